"""The ASE-NAS policy: an edge-aware graph network over the candidate set and an LSTM controller.

One rollout emits ``1 + 2 * n_steps`` tokens: the subspace (candidate) index, then ``n_steps`` times a decision
index and an option index for it. Rollouts run as a batch: the searcher draws a few at once (the later ones are
redraws for when the first lands on a known architecture), which costs about as much as one.

Sampling (:meth:`AseNasPolicy.sample`) steps the LSTM token by token, in numpy, without autograd. Learning scores recorded
tokens (teacher forcing): the inputs of every step are then known, so the LSTM runs over the whole sequence at once. A
pending proposal is thus always scored under the parameters current when its result arrives.

The model is a torch module (parameters, initialisation, ``state_dict``, the optimizer) and :meth:`AseNasPolicy.embed`
and :meth:`AseNasPolicy.score` are its torch forward passes, but the searcher runs numpy passes on views of the same
parameters: :meth:`AseNasPolicy.embed_array` and :meth:`AseNasPolicy.reinforce_gradients`, whose backward pass is
written out by hand. At this size torch's cost per operation, above all autograd's per node, was most of the time of a
proposal (an update took 4-5 ms in torch, about 1 ms in numpy); the tests check the numpy passes against autograd.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["AseNasPolicy", "CandidateGraph", "EdgeSageLayer"]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # no overflow warnings for large |x|


def _lstm_cell(z: np.ndarray, c: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One LSTM step from the gate pre-activations ``z`` (B, 4H; PyTorch's gate order i, f, g, o) and the cell
    ``c`` (B, H; None: zeros): the new hidden state and cell, the gate activations (B, 4H) and tanh of the cell."""
    n = z.shape[1] // 4
    gates = _sigmoid(z)  # one call for i, f and o (and g, overwritten): fewer numpy calls than one per gate
    gates[:, 2 * n:3 * n] = np.tanh(z[:, 2 * n:3 * n])
    i, f, g, o = gates[:, :n], gates[:, n:2 * n], gates[:, 2 * n:3 * n], gates[:, 3 * n:]
    c = i * g if c is None else f * c + i * g
    tanh_c = np.tanh(c)
    return o * tanh_c, c, gates, tanh_c


@dataclass(frozen=True)
class CandidateGraph:
    """Tensors of :func:`nni_asenas.core.encoding.candidate_graph` plus mean-aggregation matrices."""

    nodes: torch.Tensor  # (K, F)
    edges: torch.Tensor  # (E, 2) [start, end], long
    edge_features: torch.Tensor  # (E, F)
    mean_in: torch.Tensor  # (K, E): row v averages the edges ending at v
    mean_out: torch.Tensor  # (K, E): row v averages the edges starting at v

    @classmethod
    def from_arrays(cls, nodes: np.ndarray, edges: np.ndarray, edge_features: np.ndarray) -> CandidateGraph:
        k, e = len(nodes), len(edges)
        mean_in = np.zeros((k, e), dtype=np.float32)
        mean_out = np.zeros((k, e), dtype=np.float32)
        for j, (start, end) in enumerate(edges):
            mean_in[end, j] = 1.0
            mean_out[start, j] = 1.0
        for matrix in (mean_in, mean_out):
            degree = matrix.sum(axis=1, keepdims=True)
            np.divide(matrix, degree, out=matrix, where=degree > 0)
        return cls(
            torch.from_numpy(np.ascontiguousarray(nodes, dtype=np.float32)),
            torch.from_numpy(np.ascontiguousarray(edges, dtype=np.int64)),
            torch.from_numpy(np.ascontiguousarray(edge_features, dtype=np.float32)),
            torch.from_numpy(mean_in),
            torch.from_numpy(mean_out),
        )


class EdgeSageLayer(nn.Module):
    """GraphSAGE-style layer that reads and updates edge features.

    A node adds the mean message over its incoming edges and, with separate weights, over its outgoing ones
    (edges point from worse to better candidates, so the two directions mean different things). A message is a
    linear map of ``[neighbour, edge]``. Edges are updated from ``[edge, start node, end node]``.
    """

    def __init__(self, node_dim: int, edge_dim: int, hidden: int, *, update_edges: bool = True) -> None:
        super().__init__()
        self.self_map = nn.Linear(node_dim, hidden)
        self.in_message = nn.Linear(node_dim + edge_dim, hidden, bias=False)
        self.out_message = nn.Linear(node_dim + edge_dim, hidden, bias=False)
        # The last layer's edge output would feed nothing: it has no edge update.
        self.edge_map = nn.Linear(edge_dim + 2 * node_dim, hidden) if update_edges else None

    def forward(self, h: torch.Tensor, e: torch.Tensor, graph: CandidateGraph) -> tuple[torch.Tensor, torch.Tensor]:
        start, end = graph.edges[:, 0], graph.edges[:, 1]
        h_start, h_end = h[start], h[end]
        incoming = graph.mean_in @ self.in_message(torch.cat([h_start, e], dim=1))
        outgoing = graph.mean_out @ self.out_message(torch.cat([h_end, e], dim=1))
        h_new = F.relu(self.self_map(h) + incoming + outgoing)
        if self.edge_map is None:
            return h_new, e
        return h_new, F.relu(self.edge_map(torch.cat([e, h_start, h_end], dim=1)))


class AseNasPolicy(nn.Module):
    """Graph network + LSTM controller for global (subspace) and local (edit) search.

    Logits pass through ``c * tanh(logits / temperature)``, with ``c`` per token kind.
    """

    option_masks: torch.Tensor  # (decisions, max options) bool buffer: which options each decision has

    def __init__(
        self,
        sizes: Sequence[int],
        *,
        n_steps: int,
        hidden_size: int = 64,
        n_graph_layers: int = 2,
        temperature: float = 5.0,
        subspace_tanh: float = 1.5,
        decision_tanh: float = 1.5,
        option_tanh: float = 2.5,
        init_range: float = 0.1,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.sizes = [int(n) for n in sizes]
        self.n_steps = int(n_steps)
        self.temperature = float(temperature)
        self.subspace_tanh, self.decision_tanh, self.option_tanh = subspace_tanh, decision_tanh, option_tanh
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(int).tolist()
        feature_dim = self.offsets[-1] + 1  # one-hot code + score

        dims = [feature_dim] + [hidden_size] * n_graph_layers
        self.graph_layers = nn.ModuleList(
            EdgeSageLayer(dims[i], dims[i], dims[i + 1], update_edges=i + 1 < n_graph_layers) for i in range(n_graph_layers)
        )
        self.lstm = nn.LSTM(hidden_size, hidden_size, batch_first=True)
        self.attention_key = nn.Linear(hidden_size, hidden_size, bias=False)
        self.attention_query = nn.Linear(hidden_size, hidden_size, bias=False)
        self.attention_score = nn.Linear(hidden_size, 1, bias=False)
        self.decision_head = nn.Linear(hidden_size, len(self.sizes))
        self.option_head = nn.Linear(hidden_size, self.offsets[-1])
        self.decision_embedding = nn.Embedding(len(self.sizes), hidden_size)
        self.option_embedding = nn.Embedding(self.offsets[-1], hidden_size)
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.uniform_(-init_range, init_range, generator=generator)
        masks = torch.zeros(len(self.sizes), self.offsets[-1], dtype=torch.bool)
        for decision in range(len(self.sizes)):
            masks[decision, self.offsets[decision] : self.offsets[decision + 1]] = True
        self.register_buffer("option_masks", masks, persistent=False)
        self._sizes_np = np.asarray(self.sizes)
        self._bind_arrays()

    def _bind_arrays(self) -> None:
        """numpy views of the parameters (and masks) for the numpy passes: the optimizer and load_state_dict update
        them in place. A copy (``copy.deepcopy``, pickle) binds its own (:meth:`__setstate__`)."""
        self._option_masks_np = self.option_masks.numpy()
        self._numpy_parameters = {name: value.detach().numpy() for name, value in self.named_parameters()}
        self._parameter_list = list(self.parameters())
        self._embed_memo: tuple[CandidateGraph, list[int], tuple[np.ndarray, list[tuple[np.ndarray | None, ...]]]] | None = None

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._bind_arrays()

    def _squash(self, logits: torch.Tensor, c: float) -> torch.Tensor:
        return c * torch.tanh(logits / self.temperature)

    def _probabilities(self, logits: np.ndarray, c: float, valid: np.ndarray | None = None) -> np.ndarray:
        """Sampling probabilities of squashed ``logits`` (B, n)."""
        squashed = c * np.tanh(logits.astype(np.float64) / self.temperature)
        if valid is not None:
            squashed = np.where(valid, squashed, -np.inf)
        weights = np.exp(squashed - squashed.max(axis=-1, keepdims=True))
        return weights / weights.sum(axis=-1, keepdims=True)

    def _log_prob_and_entropy(
        self, logits: torch.Tensor, c: float, tokens: torch.Tensor, valid: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed log-probability and entropy of ``tokens`` (B, S) under ``logits`` (B, S, n), per row (B,)."""
        squashed = self._squash(logits, c)
        if valid is not None:  # option logits: only the chosen decision's options
            squashed = squashed.masked_fill(~valid, float("-inf"))
        log_p = F.log_softmax(squashed, dim=-1)
        chosen = log_p.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        p_log_p = log_p.exp() * (log_p if valid is None else log_p.masked_fill(~valid, 0.0))
        return chosen.sum(dim=-1), -p_log_p.sum(dim=(-2, -1))

    def embed(self, graph: CandidateGraph) -> torch.Tensor:
        h, e = graph.nodes, graph.edge_features
        for layer in self.graph_layers:
            h, e = layer(h, e, graph)
        return h

    def _attention(self, node_embeddings: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Subspace logits (B, K): additive attention of the LSTM states (B, H) over the candidates."""
        keys = self.attention_key(node_embeddings)
        return self.attention_score(torch.tanh(keys.unsqueeze(0) + self.attention_query(h).unsqueeze(1))).squeeze(-1)

    def sample(self, node_embeddings: torch.Tensor | np.ndarray, rng: np.random.Generator, batch: int = 1) -> np.ndarray:
        """``batch`` rollouts: tokens (B, 1 + 2 * n_steps), option tokens relative to their decision.

        Runs in numpy on the current parameters (views, no copies): drawing needs no gradients, and at this size
        numpy's per-operation cost is a fraction of torch's. :meth:`score` computes the same distributions.
        """
        w = self._numpy_parameters
        w_ih, w_hh = w["lstm.weight_ih_l0"].T, w["lstm.weight_hh_l0"].T
        bias = w["lstm.bias_ih_l0"] + w["lstm.bias_hh_l0"]

        def lstm(x: np.ndarray, h: np.ndarray | None, c: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
            h, c, _, _ = _lstm_cell(x @ w_ih + bias if h is None else x @ w_ih + h @ w_hh + bias, c)
            return h, c

        def draw(logits: np.ndarray, c: float, valid: np.ndarray | None = None) -> np.ndarray:
            p = self._probabilities(logits, c, valid)
            cumulative = np.cumsum(p, axis=1)
            u = rng.random(len(p)) * cumulative[:, -1]
            return np.minimum((cumulative <= u[:, None]).sum(axis=1), p.shape[1] - 1)

        embeddings = node_embeddings.detach().numpy() if isinstance(node_embeddings, torch.Tensor) else node_embeddings
        tokens = np.zeros((batch, 1 + 2 * self.n_steps), dtype=np.int64)
        offsets = np.asarray(self.offsets)
        # Global search: attention of the LSTM state over the candidates picks the subspace.
        h, c = lstm(np.broadcast_to(embeddings.mean(axis=0), (batch, embeddings.shape[1])), None, None)  # zero state
        keys = embeddings @ w["attention_key.weight"].T
        query = h @ w["attention_query.weight"].T
        attention = np.tanh(keys[None, :, :] + query[:, None, :]) @ w["attention_score.weight"][0]
        tokens[:, 0] = draw(attention, self.subspace_tanh)
        x = embeddings[tokens[:, 0]]
        # Local search: n_steps edits, each a decision then one of its options (drawn among all options, masked).
        for step in range(self.n_steps):
            h, c = lstm(x, h, c)
            decision = draw(h @ w["decision_head.weight"].T + w["decision_head.bias"], self.decision_tanh)
            h, c = lstm(w["decision_embedding.weight"][decision], h, c)
            option_logits = h @ w["option_head.weight"].T + w["option_head.bias"]
            option = draw(option_logits, self.option_tanh, self._option_masks_np[decision])
            x = w["option_embedding.weight"][option]
            tokens[:, 1 + 2 * step] = decision
            tokens[:, 2 + 2 * step] = option - offsets[decision]
        return tokens

    def _checked_tokens(self, tokens: np.ndarray, n_candidates: int) -> np.ndarray:
        """``tokens`` as (B, 1 + 2 * n_steps) int64, or ValueError for tokens out of range (a state saved for
        another space)."""
        tokens = np.asarray(tokens, dtype=np.int64).reshape(-1, 1 + 2 * self.n_steps)
        subspace, decisions, options = tokens[:, 0], tokens[:, 1::2], tokens[:, 2::2]
        sizes = self._sizes_np
        if len(tokens) and tokens.min() >= 0 and subspace.max() < n_candidates and decisions.max() < len(sizes) and (
                options < sizes[decisions]).all():
            return tokens  # the usual case, in fewer operations than finding the culprit below
        if (subspace < 0).any() or (subspace >= n_candidates).any():
            raise ValueError(f"recorded subspace tokens {subspace.tolist()} are out of range")
        if (decisions < 0).any() or (decisions >= len(sizes)).any():
            raise ValueError(f"recorded decision tokens {decisions.tolist()} are out of range")
        if (options < 0).any() or (options >= sizes[decisions]).any():
            raise ValueError(f"recorded option tokens {options.tolist()} are out of range")
        return tokens

    def score(self, node_embeddings: torch.Tensor, tokens: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probability and entropy, summed over each rollout's tokens (B, 1 + 2 * n_steps): two (B,) tensors.

        Raises ValueError for tokens out of range (a state saved for another space)."""
        tokens = self._checked_tokens(tokens, len(node_embeddings))
        subspace, decisions, options = tokens[:, 0], tokens[:, 1::2], tokens[:, 2::2]
        global_options = torch.from_numpy(options + np.asarray(self.offsets)[decisions])
        decisions_t = torch.from_numpy(decisions)
        # The input of every step is known: the mean candidate embedding, then each token's embedding.
        steps = [node_embeddings.mean(dim=0, keepdim=True).expand(len(tokens), -1), node_embeddings[subspace]]
        for step in range(self.n_steps):
            steps.append(self.decision_embedding.weight[decisions_t[:, step]])
            if step + 1 < self.n_steps:
                steps.append(self.option_embedding.weight[global_options[:, step]])
        out, _ = self.lstm(torch.stack(steps, dim=1))  # (B, 1 + 2 * n_steps, H)
        subspace_lp, subspace_entropy = self._log_prob_and_entropy(
            self._attention(node_embeddings, out[:, 0]).unsqueeze(1), self.subspace_tanh,
            torch.from_numpy(subspace).unsqueeze(1),
        )
        decision_lp, decision_entropy = self._log_prob_and_entropy(
            self.decision_head(out[:, 1::2]), self.decision_tanh, decisions_t
        )
        option_lp, option_entropy = self._log_prob_and_entropy(
            self.option_head(out[:, 2::2]), self.option_tanh, global_options, self.option_masks[decisions_t]
        )
        return subspace_lp + decision_lp + option_lp, subspace_entropy + decision_entropy + option_entropy

    # ------------------------------------------------------------------ numpy passes (see the module's docstring)

    def embed_array(self, graph: CandidateGraph) -> np.ndarray:
        """:meth:`embed` in numpy: node embeddings (K, H) under the current parameters."""
        return self._embed_forward(graph)[0]

    def _parameter_versions(self) -> list[int]:
        """Counts of in-place changes of every parameter (an optimizer step or load_state_dict changes them)."""
        return [parameter._version for parameter in self._parameter_list]

    def _embed_forward(self, graph: CandidateGraph) -> tuple[np.ndarray, list[tuple[np.ndarray | None, ...]]]:
        """Embeddings and the activations backward needs, kept for the last graph: a proposal's update (the
        searcher's tell) reuses what its draws (ask) computed while the parameters are still the same."""
        versions = self._parameter_versions()
        memo = self._embed_memo
        if memo is not None and memo[0] is graph and memo[1] == versions:
            return memo[2]
        result = self._embed_layers(graph)
        self._embed_memo = (graph, versions, result)
        return result

    def _embed_layers(self, graph: CandidateGraph) -> tuple[np.ndarray, list[tuple[np.ndarray | None, ...]]]:
        w = self._numpy_parameters
        h, e = graph.nodes.numpy(), graph.edge_features.numpy()
        edges = graph.edges.numpy()
        start, end = edges[:, 0], edges[:, 1]
        mean_in, mean_out = graph.mean_in.numpy(), graph.mean_out.numpy()
        saved: list[tuple[np.ndarray | None, ...]] = []
        for i, layer in enumerate(self.graph_layers):
            p = f"graph_layers.{i}."
            h_start, h_end = h[start], h[end]
            in_x, out_x = np.concatenate([h_start, e], axis=1), np.concatenate([h_end, e], axis=1)
            pre = (h @ w[p + "self_map.weight"].T + w[p + "self_map.bias"]
                   + mean_in @ (in_x @ w[p + "in_message.weight"].T) + mean_out @ (out_x @ w[p + "out_message.weight"].T))
            edge_x = edge_pre = None
            if layer.edge_map is not None:
                edge_x = np.concatenate([e, h_start, h_end], axis=1)
                edge_pre = edge_x @ w[p + "edge_map.weight"].T + w[p + "edge_map.bias"]
                e = np.maximum(edge_pre, 0.0)
            saved.append((h, in_x, out_x, pre, edge_x, edge_pre))
            h = np.maximum(pre, 0.0)
        h.flags.writeable = False  # shared through the memo
        return h, saved

    def _embed_backward(self, graph: CandidateGraph, saved: list[tuple[np.ndarray | None, ...]], d_h: np.ndarray,
                        grads: dict[str, np.ndarray]) -> None:
        """Add the graph layers' parameter gradients to ``grads``, given the gradient ``d_h`` of the embeddings."""
        w = self._numpy_parameters
        edges = graph.edges.numpy()
        start, end = edges[:, 0], edges[:, 1]
        mean_in, mean_out = graph.mean_in.numpy(), graph.mean_out.numpy()
        d_e: np.ndarray | None = None  # gradient of the layer's edge output (the last layer's is unused)
        for i in reversed(range(len(saved))):
            p = f"graph_layers.{i}."
            h, in_x, out_x, pre, edge_x, edge_pre = saved[i]
            assert h is not None and in_x is not None and out_x is not None and pre is not None
            d_pre = d_h * (pre > 0)
            d_in, d_out = mean_in.T @ d_pre, mean_out.T @ d_pre  # per edge (E, H)
            grads[p + "self_map.weight"] = d_pre.T @ h
            grads[p + "self_map.bias"] = d_pre.sum(axis=0)
            grads[p + "in_message.weight"] = d_in.T @ in_x
            grads[p + "out_message.weight"] = d_out.T @ out_x
            d_edge_pre = None
            if edge_x is not None and edge_pre is not None and d_e is not None:
                d_edge_pre = d_e * (edge_pre > 0)
                grads[p + "edge_map.weight"] = d_edge_pre.T @ edge_x
                grads[p + "edge_map.bias"] = d_edge_pre.sum(axis=0)
            if i == 0:
                break  # the first layer's inputs are the graph's features
            n = h.shape[1]
            d_in_x, d_out_x = d_in @ w[p + "in_message.weight"], d_out @ w[p + "out_message.weight"]
            d_h = d_pre @ w[p + "self_map.weight"]
            d_start, d_end, d_e = d_in_x[:, :n], d_out_x[:, :n], d_in_x[:, n:] + d_out_x[:, n:]
            if d_edge_pre is not None:
                d_edge_x = d_edge_pre @ w[p + "edge_map.weight"]
                m = d_e.shape[1]
                d_e = d_e + d_edge_x[:, :m]
                d_start, d_end = d_start + d_edge_x[:, m:m + n], d_end + d_edge_x[:, m + n:]
            np.add.at(d_h, start, d_start)
            np.add.at(d_h, end, d_end)

    def _logit_gradient(self, logits: np.ndarray, c: float, tokens: np.ndarray, advantages: np.ndarray,
                        entropy_weight: float, valid: np.ndarray | None = None) -> np.ndarray:
        """Gradient of ``-sum(advantage * log p(token) + entropy_weight * entropy)`` with respect to ``logits``
        (B, S, n), for tokens (B, S) and each row's advantage (B,); see :meth:`_log_prob_and_entropy`."""
        tanh = np.tanh(logits.astype(np.float64) / self.temperature)
        squashed = c * tanh
        if valid is not None:
            squashed = np.where(valid, squashed, -np.inf)
        shifted = squashed - squashed.max(axis=-1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        p = np.exp(log_p)
        if valid is not None:
            log_p = np.where(valid, log_p, 0.0)
        entropy = -(p * log_p).sum(axis=-1, keepdims=True)
        # d(-a log p_t)/ds_j = a (p_j - [j = t]);  d(-w H)/ds_j = w p_j (log p_j + H)
        chosen = np.arange(p.shape[-1]) == tokens[..., None]
        d_squashed = advantages[:, None, None] * (p - chosen) + entropy_weight * p * (log_p + entropy)
        return (d_squashed * (c / self.temperature) * (1.0 - tanh * tanh)).astype(np.float32)

    def reinforce_gradients(self, graph: CandidateGraph, tokens: np.ndarray, advantages: Sequence[float],
                            entropy_weight: float) -> dict[str, np.ndarray]:
        """Gradients of the REINFORCE loss ``-sum_r (advantages[r] * log p(tokens[r]) + entropy_weight * H_r)``
        over rollouts ``tokens`` (B, 1 + 2 * n_steps) sampled on ``graph``, as :meth:`score` and autograd would
        give them, by parameter name (float32). A parameter the loss does not use (the option embeddings when
        ``n_steps`` is 1) has none, as with autograd.

        Raises ValueError for tokens out of range (a state saved for another space)."""
        w = self._numpy_parameters
        emb, saved = self._embed_forward(graph)
        tokens = self._checked_tokens(tokens, len(emb))
        adv = np.asarray(advantages, dtype=np.float64)
        subspace, decisions, options = tokens[:, 0], tokens[:, 1::2], tokens[:, 2::2]
        global_options = options + np.asarray(self.offsets)[decisions]
        batch, n_steps, hidden = len(tokens), self.n_steps, emb.shape[1]
        w_ih, w_hh = w["lstm.weight_ih_l0"], w["lstm.weight_hh_l0"]
        # Teacher forcing: the input of every step is known (see score()).
        length = 1 + 2 * n_steps
        x = np.empty((batch, length, hidden), dtype=np.float32)
        x[:, 0] = emb.sum(axis=0) / len(emb)
        x[:, 1] = emb[subspace]
        x[:, 2::2] = w["decision_embedding.weight"][decisions]
        x[:, 3::2] = w["option_embedding.weight"][global_options[:, :-1]]
        gates_x = x @ w_ih.T + (w["lstm.bias_ih_l0"] + w["lstm.bias_hh_l0"])
        out = np.empty((batch, length, hidden), dtype=np.float32)
        cells = np.zeros((batch, length + 1, hidden), dtype=np.float32)  # cells[:, t] is the cell before step t
        gates = np.empty((batch, length, 4 * hidden), dtype=np.float32)
        tanh_c = np.empty((batch, length, hidden), dtype=np.float32)
        for t in range(length):
            z = gates_x[:, t] if t == 0 else gates_x[:, t] + out[:, t - 1] @ w_hh.T
            out[:, t], cells[:, t + 1], gates[:, t], tanh_c[:, t] = _lstm_cell(z, None if t == 0 else cells[:, t])

        grads: dict[str, np.ndarray] = {}
        d_out = np.zeros_like(out)
        # Subspace: additive attention of the first state over the candidates (see _attention()).
        w_key, w_query, w_score = w["attention_key.weight"], w["attention_query.weight"], w["attention_score.weight"]
        attention = np.tanh((emb @ w_key.T)[None, :, :] + (out[:, 0] @ w_query.T)[:, None, :])  # (B, K, H)
        d_logits = self._logit_gradient((attention @ w_score[0])[:, None, :], self.subspace_tanh, subspace[:, None], adv,
                                         entropy_weight)[:, 0]  # (B, K): logits (B, 1, K) with one token each
        grads["attention_score.weight"] = np.einsum("bk,bkh->h", d_logits, attention)[None, :]
        d_pre = d_logits[:, :, None] * w_score[0] * (1.0 - attention * attention)
        d_keys, d_query = d_pre.sum(axis=0), d_pre.sum(axis=1)
        grads["attention_key.weight"] = d_keys.T @ emb
        grads["attention_query.weight"] = d_query.T @ out[:, 0]
        d_emb = d_keys @ w_key
        d_out[:, 0] = d_query @ w_query
        # Decisions and options: linear heads on the other states.
        for name, states, token, c, valid in (
            ("decision_head", slice(1, None, 2), decisions, self.decision_tanh, None),
            ("option_head", slice(2, None, 2), global_options, self.option_tanh, self._option_masks_np[decisions]),
        ):
            weight = w[name + ".weight"]
            d_logits = self._logit_gradient(out[:, states] @ weight.T + w[name + ".bias"], c, token, adv,
                                            entropy_weight, valid)  # (B, n_steps, n)
            grads[name + ".weight"] = d_logits.reshape(-1, weight.shape[0]).T @ out[:, states].reshape(-1, hidden)
            grads[name + ".bias"] = d_logits.sum(axis=(0, 1))
            d_out[:, states] = d_logits @ weight
        # The LSTM, backward through time. What multiplies the cell's and the state's gradients in each gate's
        # pre-activation gradient, for all steps at once: [g i (1 - i), c' f (1 - f), i (1 - g^2), tanh(c) o (1 - o)].
        i, f, g, o = (gates[..., k * hidden:(k + 1) * hidden] for k in range(4))
        by_cell = np.empty((batch, length, 3, hidden), dtype=np.float32)
        by_cell[:, :, 0] = g * i * (1.0 - i)
        by_cell[:, :, 1] = cells[:, :-1] * f * (1.0 - f)
        by_cell[:, :, 2] = i * (1.0 - g * g)
        by_state = tanh_c * o * (1.0 - o)
        cell_by_state = o * (1.0 - tanh_c * tanh_c)  # d cell / d state
        d_z = np.empty((batch, length, 4 * hidden), dtype=np.float32)
        d_c = np.zeros((batch, hidden), dtype=np.float32)
        for t in reversed(range(length)):
            d_h = d_out[:, t] if t == length - 1 else d_out[:, t] + d_z[:, t + 1] @ w_hh
            d_c = d_h * cell_by_state[:, t] if t == length - 1 else d_c * f[:, t + 1] + d_h * cell_by_state[:, t]
            d_z[:, t, :3 * hidden] = (by_cell[:, t] * d_c[:, None, :]).reshape(batch, 3 * hidden)
            d_z[:, t, 3 * hidden:] = by_state[:, t] * d_h
        flat_d_z = d_z.reshape(-1, 4 * hidden)
        grads["lstm.weight_ih_l0"] = flat_d_z.T @ x.reshape(-1, hidden)
        grads["lstm.weight_hh_l0"] = d_z[:, 1:].reshape(-1, 4 * hidden).T @ out[:, :-1].reshape(-1, hidden)
        grads["lstm.bias_ih_l0"] = grads["lstm.bias_hh_l0"] = flat_d_z.sum(axis=0)
        d_x = d_z @ w_ih  # (B, S, H)
        d_emb += d_x[:, 0].sum(axis=0) / len(emb)
        np.add.at(d_emb, subspace, d_x[:, 1])
        grads["decision_embedding.weight"] = np.zeros_like(w["decision_embedding.weight"])
        np.add.at(grads["decision_embedding.weight"], decisions, d_x[:, 2::2])
        if n_steps > 1:  # else unused
            grads["option_embedding.weight"] = np.zeros_like(w["option_embedding.weight"])
            np.add.at(grads["option_embedding.weight"], global_options[:, :-1], d_x[:, 3::2])
        self._embed_backward(graph, saved, d_emb, grads)
        return {name: np.ascontiguousarray(grad, dtype=np.float32) for name, grad in grads.items()}

    @staticmethod
    def edits(tokens: Sequence[int]) -> list[tuple[int, int]]:
        """The (decision, option) edits encoded by one rollout's tokens (after the subspace token)."""
        return [(int(tokens[i]), int(tokens[i + 1])) for i in range(1, len(tokens), 2)]
