import numpy as np
import pytest
import torch

from nni_asenas.core.encoding import candidate_graph, one_hot
from nni_asenas.core.policy import AseNasPolicy, CandidateGraph, _lstm_cell, _sigmoid

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


def test_sample_shapes_and_score_gradients():
    policy = make_policy(n_steps=3)
    graph = make_graph(k=4)
    tokens = policy.sample(policy.embed(graph), np.random.default_rng(0), batch=5)
    assert tokens.shape == (5, 1 + 2 * 3)
    assert ((0 <= tokens[:, 0]) & (tokens[:, 0] < 4)).all()
    for row in tokens.tolist():
        for decision, option in AseNasPolicy.edits(row):
            assert 0 <= decision < len(SIZES) and 0 <= option < SIZES[decision]
    log_prob, entropy = policy.score(policy.embed(graph), tokens)
    assert log_prob.shape == (5,) and entropy.shape == (5,)
    assert (log_prob < 0).all() and (entropy > 0).all()
    (log_prob.sum() + entropy.sum()).backward()
    grads = {name: p.grad for name, p in policy.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["graph_layers.0.self_map.weight"].abs().sum() > 0  # the score flows back into the graph network


def test_sampling_needs_no_autograd():
    policy = make_policy()
    embeddings = policy.embed(make_graph())
    assert embeddings.requires_grad
    assert isinstance(policy.sample(embeddings, np.random.default_rng(0), batch=2), np.ndarray)


def test_sequence_scoring_matches_a_step_by_step_computation():
    """score() runs the LSTM over the whole token sequence; recompute each token's probability step by step."""
    policy = make_policy(n_steps=2)
    graph = make_graph(k=3)
    tokens = policy.sample(policy.embed(graph), np.random.default_rng(4), batch=2)
    log_prob, entropy = policy.score(policy.embed(graph), tokens)
    with torch.no_grad():
        emb = policy.embed(graph)
        for row in range(2):
            t = tokens[row]
            expected_lp, expected_entropy = 0.0, 0.0
            x = emb.mean(dim=0, keepdim=True)
            out, state = policy.lstm(x.unsqueeze(1))
            logits = [(policy._attention(emb, out[:, 0])[0], policy.subspace_tanh, t[0])]
            x = emb[t[0] : t[0] + 1]
            for step in range(2):
                d, o = t[1 + 2 * step], t[2 + 2 * step]
                out, state = policy.lstm(x.unsqueeze(1), state)
                logits.append((policy.decision_head(out[0, 0]), policy.decision_tanh, d))
                x = policy.decision_embedding.weight[d : d + 1]
                out, state = policy.lstm(x.unsqueeze(1), state)
                start, stop = policy.offsets[d], policy.offsets[d + 1]
                logits.append((policy.option_head(out[0, 0])[start:stop], policy.option_tanh, o))
                x = policy.option_embedding.weight[start + o : start + o + 1]
            for raw, c, token in logits:
                lp = torch.log_softmax(c * torch.tanh(raw.view(-1) / policy.temperature), dim=0)
                expected_lp += lp[token].item()
                expected_entropy -= (lp.exp() * lp).sum().item()
            assert log_prob[row].item() == pytest.approx(expected_lp, abs=1e-5)
            assert entropy[row].item() == pytest.approx(expected_entropy, abs=1e-5)


def test_scoring_is_deterministic():
    policy = make_policy()
    graph = make_graph()
    tokens = policy.sample(policy.embed(graph), np.random.default_rng(3), batch=3)
    a = policy.score(policy.embed(graph), tokens)
    b = policy.score(policy.embed(graph), tokens)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_score_rejects_tokens_out_of_range():
    policy = make_policy(n_steps=1)
    embeddings = policy.embed(make_graph(k=3))
    with pytest.raises(ValueError, match="option tokens"):
        policy.score(embeddings, np.array([[0, 3, 2]]))  # decision 3 has 2 options
    with pytest.raises(ValueError, match="subspace tokens"):
        policy.score(embeddings, np.array([[3, 0, 0]]))  # 3 candidates


def test_entropy_is_bounded_by_uniform_choices():
    policy = make_policy(n_steps=2)
    graph = make_graph(k=3)
    tokens = policy.sample(policy.embed(graph), np.random.default_rng(0))
    _, entropy = policy.score(policy.embed(graph), tokens)
    decisions = [d for d, _ in AseNasPolicy.edits(tokens[0].tolist())]
    bound = np.log(3) + 2 * np.log(len(SIZES)) + sum(np.log(SIZES[d]) for d in decisions)
    assert entropy.item() <= bound + 1e-5
    # logits are squashed by c * tanh(x / T), and start near zero: the first policy is close to uniform
    assert entropy.item() > 0.9 * bound


def test_sampling_follows_the_probabilities():
    policy = make_policy(n_steps=1)
    embeddings = policy.embed(make_graph(k=3))
    tokens = policy.sample(embeddings, np.random.default_rng(0), batch=3000)
    counts = np.bincount(tokens[:, 0], minlength=3) / 3000
    assert np.abs(counts - 1 / 3).max() < 0.05  # near-uniform start over 3 candidates
    options = tokens[tokens[:, 1] == 0, 2]  # decision 0 has 5 options, all drawn
    assert set(options.tolist()) == set(range(5))


def test_sampling_is_reproducible_from_the_rng():
    policy = make_policy()
    embeddings = policy.embed(make_graph())
    a = policy.sample(embeddings, np.random.default_rng(7), batch=3)
    b = policy.sample(embeddings, np.random.default_rng(7), batch=3)
    c = policy.sample(embeddings, np.random.default_rng(8), batch=3)
    assert (a == b).all() and not (a == c).all()


def test_numpy_sampling_follows_the_torch_distribution():
    """sample() runs in numpy; its choices must follow the distribution score() assigns (on-policy REINFORCE).
    Sample many rollouts of a trained-away-from-uniform policy and compare token frequencies with score()."""
    policy = make_policy(n_steps=1)
    with torch.no_grad():
        for p in policy.parameters():
            p.mul_(20)  # far from uniform
    graph = make_graph(k=3)
    emb = policy.embed(graph)
    tokens = policy.sample(emb, np.random.default_rng(0), batch=20000)
    rows, counts = np.unique(tokens, axis=0, return_counts=True)
    with torch.no_grad():
        log_prob, _ = policy.score(emb, rows)
    expected = log_prob.exp().numpy()
    assert expected.sum() == pytest.approx(1.0, abs=1e-3)  # every possible rollout was drawn
    frequent = expected > 0.01
    np.testing.assert_allclose(counts[frequent] / 20000, expected[frequent], atol=0.01)


@pytest.mark.parametrize(("n_steps", "k", "batch", "scale"), [(1, 3, 3, 1.0), (1, 3, 4, 20.0), (3, 4, 5, 10.0), (2, 1, 2, 1.0)])
def test_numpy_gradients_equal_autograd_of_score(n_steps, k, batch, scale):
    """reinforce_gradients() (numpy, what the searcher learns with) = autograd of the REINFORCE loss on score()."""
    policy = make_policy(n_steps=n_steps, seed=n_steps)
    with torch.no_grad():
        for p in policy.parameters():
            p.mul_(scale)  # also far from uniform
    graph = make_graph(k=k, seed=k)
    rng = np.random.default_rng(batch)
    tokens = policy.sample(policy.embed_array(graph), rng, batch=batch)
    advantages, entropy_weight = rng.standard_normal(batch), 0.3
    log_prob, entropy = policy.score(policy.embed(graph), tokens)
    (-(log_prob * torch.tensor(advantages, dtype=torch.float32)).sum() - entropy_weight * entropy.sum()).backward()
    grads = policy.reinforce_gradients(graph, tokens, advantages, entropy_weight)
    expected = {name: p.grad for name, p in policy.named_parameters() if p.grad is not None}
    assert set(grads) == set(expected)  # with one step the option embeddings are unused: no gradient, as autograd
    assert ("option_embedding.weight" in grads) == (n_steps > 1)
    for name, grad in expected.items():
        assert grads[name].dtype == np.float32 and grads[name].shape == tuple(grad.shape)
        np.testing.assert_allclose(grads[name], grad.numpy(), rtol=0, atol=1e-4 * float(grad.abs().max()) + 1e-9,
                                   err_msg=name)


def test_numpy_embeddings_equal_torch_and_follow_parameter_changes():
    policy = make_policy()
    graph = make_graph(k=4)
    first = policy.embed_array(graph)
    np.testing.assert_allclose(first, policy.embed(graph).detach().numpy(), rtol=1e-5, atol=1e-6)
    assert policy.embed_array(graph) is first  # kept for the same graph and parameters
    with torch.no_grad():
        policy.graph_layers[0].self_map.bias.add_(0.5)  # as an optimizer step does: in place
    second = policy.embed_array(graph)
    assert not np.array_equal(first, second)
    np.testing.assert_allclose(second, policy.embed(graph).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_numpy_gradients_reject_tokens_out_of_range():
    policy = make_policy(n_steps=1)
    with pytest.raises(ValueError, match="option tokens"):
        policy.reinforce_gradients(make_graph(k=3), np.array([[0, 3, 2]]), [1.0], 0.0)


def test_sampling_draws_the_tokens_it_drew_before_the_numpy_passes_were_optimised():
    """Pinned draws (recorded with the sampler of release 0.2.0): a faster sampler must not change a search."""
    policy = make_policy(n_steps=2, seed=5)
    with torch.no_grad():
        for p in policy.parameters():
            p.mul_(10)
    tokens = policy.sample(policy.embed(make_graph(k=4, seed=1)), np.random.default_rng(11), batch=6)
    assert tokens.tolist() == [[0, 0, 2, 3, 0], [2, 0, 1, 2, 1], [2, 3, 0, 3, 0], [0, 2, 2, 0, 3], [0, 1, 3, 2, 2],
                               [3, 2, 1, 1, 0]]


def test_the_lstm_cell_equals_the_textbook_formula_bit_for_bit():
    """_lstm_cell computes the gates in fewer numpy calls, and skips the zero state's terms; the sampler's draws
    depend on its exact values."""
    rng = np.random.default_rng(0)
    for batch, hidden, scale in [(32, 64, 1.0), (1, 16, 10.0), (7, 33, 0.1)]:
        z = (scale * rng.standard_normal((batch, 4 * hidden))).astype(np.float32)
        c = rng.standard_normal((batch, hidden)).astype(np.float32)
        i, f, g, o = np.split(z, 4, axis=1)
        expected_c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h_new, c_new, _, _ = _lstm_cell(z, c)
        assert np.array_equal(c_new, expected_c) and np.array_equal(h_new, _sigmoid(o) * np.tanh(expected_c))
        zero = np.zeros_like(c)
        expected_c = _sigmoid(f) * zero + _sigmoid(i) * np.tanh(g)
        h_new, c_new, _, _ = _lstm_cell(z, None)
        assert np.array_equal(c_new, expected_c) and np.array_equal(h_new, _sigmoid(o) * np.tanh(expected_c))


def test_a_copy_of_the_policy_samples_and_learns_with_its_own_parameters():
    """The numpy passes read views of the parameters: a deep copy (or an unpickled policy) must bind its own."""
    import copy
    import pickle

    policy = make_policy(n_steps=2)
    graph = make_graph()
    for other in (copy.deepcopy(policy), pickle.loads(pickle.dumps(policy))):
        with torch.no_grad():
            for p in other.parameters():
                p.mul_(3.0)
        np.testing.assert_allclose(other.embed_array(graph), other.embed(graph).detach().numpy(), rtol=1e-5, atol=1e-6)
        assert not np.allclose(other.embed_array(graph), policy.embed_array(graph))
