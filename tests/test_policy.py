import numpy as np
import pytest
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
    rollout = policy.sample(policy.embed(graph), np.random.default_rng(0), batch=5)
    assert rollout.tokens.shape == (5, 1 + 2 * 3)
    assert ((0 <= rollout.tokens[:, 0]) & (rollout.tokens[:, 0] < 4)).all()
    for row in rollout.tokens.tolist():
        for decision, option in AseNasPolicy.edits(row):
            assert 0 <= decision < len(SIZES) and 0 <= option < SIZES[decision]
    assert rollout.log_prob.shape == (5,) and rollout.entropy.shape == (5,)
    assert (rollout.log_prob < 0).all() and (rollout.entropy > 0).all()
    (rollout.log_prob.sum() + rollout.entropy.sum()).backward()
    grads = {name: p.grad for name, p in policy.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["graph_layers.0.self_map.weight"].abs().sum() > 0  # the score flows back into the graph network


def test_rows_of_a_batch_are_independent_rollouts():
    policy = make_policy()
    embeddings = policy.embed(make_graph())
    batch = policy.sample(embeddings, np.random.default_rng(3), batch=4)
    for row in range(4):
        single = policy.replay(embeddings, batch.tokens[row : row + 1])
        torch.testing.assert_close(single.log_prob[0], batch.log_prob[row])
        torch.testing.assert_close(single.entropy[0], batch.entropy[row])


def test_replay_scores_the_sampled_tokens_exactly():
    policy = make_policy()
    graph = make_graph()
    sampled = policy.sample(policy.embed(graph), np.random.default_rng(3), batch=3)
    replayed = policy.replay(policy.embed(graph), sampled.tokens)
    assert (replayed.tokens == sampled.tokens).all()
    assert torch.equal(replayed.log_prob, sampled.log_prob) and torch.equal(replayed.entropy, sampled.entropy)


def test_replay_rejects_tokens_out_of_range():
    policy = make_policy(n_steps=1)
    embeddings = policy.embed(make_graph(k=3))
    with pytest.raises(ValueError, match="out of range"):
        policy.replay(embeddings, np.array([[0, 3, 2]]))  # decision 3 has 2 options


def test_entropy_is_bounded_by_uniform_choices():
    policy = make_policy(n_steps=2)
    rollout = policy.sample(policy.embed(make_graph(k=3)), np.random.default_rng(0))
    decisions = [d for d, _ in AseNasPolicy.edits(rollout.tokens[0].tolist())]
    bound = np.log(3) + 2 * np.log(len(SIZES)) + sum(np.log(SIZES[d]) for d in decisions)
    assert rollout.entropy.item() <= bound + 1e-5
    # logits are squashed by c * tanh(x / T), and start near zero: the first policy is close to uniform
    assert rollout.entropy.item() > 0.9 * bound


def test_sampling_follows_the_probabilities():
    policy = make_policy(n_steps=1)
    embeddings = policy.embed(make_graph(k=3))
    rollout = policy.sample(embeddings, np.random.default_rng(0), batch=3000)
    counts = np.bincount(rollout.tokens[:, 0], minlength=3) / 3000
    assert np.abs(counts - 1 / 3).max() < 0.05  # near-uniform start over 3 candidates
    options = rollout.tokens[rollout.tokens[:, 1] == 0, 2]  # decision 0 has 5 options, all drawn
    assert set(options.tolist()) == set(range(5))


def test_sampling_is_reproducible_from_the_rng():
    policy = make_policy()
    embeddings = policy.embed(make_graph())
    a = policy.sample(embeddings, np.random.default_rng(7), batch=3).tokens
    b = policy.sample(embeddings, np.random.default_rng(7), batch=3).tokens
    c = policy.sample(embeddings, np.random.default_rng(8), batch=3).tokens
    assert (a == b).all() and not (a == c).all()
