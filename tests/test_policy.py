import numpy as np
import torch

from nni_asenas._encoding import candidate_graph, one_hot
from nni_asenas._policy import AseNasPolicy, CandidateGraph

SIZES = [5, 5, 3, 2]


def make_graph(k=3, seed=0):
    rng = np.random.default_rng(seed)
    codes = np.stack([one_hot(tuple(int(rng.integers(n)) for n in SIZES), SIZES) for _ in range(k)])
    return CandidateGraph.from_arrays(*candidate_graph(codes, rng.standard_normal(k).astype(np.float32)))


def make_policy(n_steps=4, seed=0):
    return AseNasPolicy(SIZES, n_steps=n_steps, hidden_size=16, generator=torch.Generator().manual_seed(seed))


def test_parameters_start_uniform_in_a_small_range():
    policy = make_policy()
    values = torch.cat([p.detach().view(-1) for p in policy.parameters()])
    assert values.abs().max() <= 0.1 and values.std() > 0.03


def test_rollout_shapes_tokens_and_gradients():
    policy = make_policy(n_steps=3)
    graph = make_graph(k=4)
    rollout = policy.sample(policy.embed(graph), np.random.default_rng(0))
    assert len(rollout.tokens) == 1 + 2 * 3
    assert 0 <= rollout.tokens[0] < 4
    for decision, option in AseNasPolicy.edits(rollout.tokens):
        assert 0 <= decision < len(SIZES) and 0 <= option < SIZES[decision]
    assert rollout.log_prob.shape == () and rollout.entropy.shape == ()
    assert rollout.log_prob.item() < 0 and rollout.entropy.item() > 0
    (rollout.log_prob + rollout.entropy).backward()
    grads = {name: p.grad for name, p in policy.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["graph_layers.0.self_map.weight"].abs().sum() > 0  # the score flows back into the graph network


def test_replay_scores_the_sampled_tokens_exactly():
    policy = make_policy()
    graph = make_graph()
    embeddings = policy.embed(graph)
    sampled = policy.sample(embeddings, np.random.default_rng(3))
    replayed = policy.replay(policy.embed(graph), sampled.tokens)
    assert replayed.tokens == sampled.tokens
    assert torch.equal(replayed.log_prob, sampled.log_prob) and torch.equal(replayed.entropy, sampled.entropy)


def test_entropy_is_bounded_by_uniform_choices():
    policy = make_policy(n_steps=2)
    rollout = policy.sample(policy.embed(make_graph(k=3)), np.random.default_rng(0))
    decisions = [d for d, _ in AseNasPolicy.edits(rollout.tokens)]
    bound = np.log(3) + 2 * np.log(len(SIZES)) + sum(np.log(SIZES[d]) for d in decisions)
    assert rollout.entropy.item() <= bound + 1e-5
    # the logits are squashed by c * tanh(x / T): no probability can fall below softmax of a +-c spread
    assert rollout.entropy.item() > 0.5 * bound


def test_sampling_is_reproducible_from_the_rng():
    policy = make_policy()
    embeddings = policy.embed(make_graph())
    a = [policy.sample(embeddings, np.random.default_rng(7)).tokens for _ in range(2)]
    b = policy.sample(embeddings, np.random.default_rng(8)).tokens
    assert a[0] == a[1]
    assert any(policy.sample(embeddings, np.random.default_rng(s)).tokens != a[0] for s in range(9, 20)) or b != a[0]
