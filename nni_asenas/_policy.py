"""The ASE-NAS policy: an edge-aware graph network over the candidate set and an LSTM controller.

One rollout emits ``1 + 2 * n_steps`` tokens: the subspace (candidate) index, then ``n_steps`` times a decision
index and an option index for it. Rollouts run as a batch: the searcher draws a few at once (the later ones are
redraws for when the first lands on a known architecture), which costs about as much as one.
:meth:`AseNasPolicy.rollout` both samples tokens and re-scores given tokens (teacher forcing), so a pending
proposal can be scored under the current parameters when its result arrives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["AseNasPolicy", "CandidateGraph", "EdgeSageLayer", "Rollout"]


@dataclass(frozen=True)
class CandidateGraph:
    """Tensors of :func:`nni_asenas._encoding.candidate_graph` plus mean-aggregation matrices."""

    nodes: torch.Tensor  # (K, F)
    edges: torch.Tensor  # (E, 2) [start, end], long
    edge_features: torch.Tensor  # (E, F)
    mean_in: torch.Tensor  # (K, E): row v averages the edges ending at v
    mean_out: torch.Tensor  # (K, E): row v averages the edges starting at v

    @classmethod
    def from_arrays(cls, nodes: np.ndarray, edges: np.ndarray, edge_features: np.ndarray) -> "CandidateGraph":
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


@dataclass
class Rollout:
    """A batch of B rollouts: tokens (B, 1 + 2 * n_steps) with option tokens relative to their decision, and per
    rollout the summed log-probability and entropy of its tokens, shape (B,)."""

    tokens: np.ndarray
    log_prob: torch.Tensor
    entropy: torch.Tensor


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
        self.lstm = nn.LSTMCell(hidden_size, hidden_size)
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
        self._option_masks_np = masks.numpy()

    def _squash(self, logits: torch.Tensor, c: float) -> torch.Tensor:
        return c * torch.tanh(logits / self.temperature)

    def _probabilities(self, logits: torch.Tensor, c: float, valid: np.ndarray | None = None) -> np.ndarray:
        """Sampling probabilities of squashed ``logits`` (B, n), computed in numpy: cheaper than autograd ops,
        which are only needed for the log-probabilities, computed once per rollout in :meth:`_score`."""
        squashed = c * np.tanh(logits.detach().numpy().astype(np.float64) / self.temperature)
        if valid is not None:
            squashed = np.where(valid, squashed, -np.inf)
        weights = np.exp(squashed - squashed.max(axis=-1, keepdims=True))
        return weights / weights.sum(axis=-1, keepdims=True)

    def _score(self, logits: torch.Tensor, c: float, tokens: np.ndarray, valid: torch.Tensor | None = None):
        """Summed log-probability and entropy of ``tokens`` (B, S) under ``logits`` (B, S, n), per row (B,)."""
        squashed = self._squash(logits, c)
        if valid is not None:  # option logits: only the chosen decision's options
            squashed = squashed.masked_fill(~valid, float("-inf"))
        log_p = F.log_softmax(squashed, dim=-1)
        chosen = log_p.gather(-1, torch.from_numpy(tokens).unsqueeze(-1)).squeeze(-1)
        p_log_p = log_p.exp() * (log_p if valid is None else log_p.masked_fill(~valid, 0.0))
        return chosen.sum(dim=-1), -p_log_p.sum(dim=(-2, -1))

    def embed(self, graph: CandidateGraph) -> torch.Tensor:
        h, e = graph.nodes, graph.edge_features
        for layer in self.graph_layers:
            h, e = layer(h, e, graph)
        return h

    def rollout(
        self, node_embeddings: torch.Tensor, choose: Callable[[int, Callable[[], np.ndarray]], np.ndarray], batch: int
    ) -> Rollout:
        """Run ``batch`` controller rollouts over ``embed(graph)``. ``choose(position, probabilities)`` returns the
        B tokens at that position; ``probabilities()`` computes their (B, n) distribution (a sampler calls it, a
        replay of recorded tokens need not)."""
        n_tokens = 1 + 2 * self.n_steps
        tokens = np.zeros((batch, n_tokens), dtype=np.int64)
        offsets = np.asarray(self.offsets)
        # Global search: attention of the LSTM state over the candidates picks the subspace.
        keys = self.attention_key(node_embeddings)
        h, c = self.lstm(node_embeddings.mean(dim=0, keepdim=True).expand(batch, -1))
        attention = self.attention_score(torch.tanh(keys.unsqueeze(0) + self.attention_query(h).unsqueeze(1)))
        attention = attention.squeeze(-1)
        tokens[:, 0] = choose(0, lambda: self._probabilities(attention, self.subspace_tanh))
        x = node_embeddings[torch.from_numpy(tokens[:, 0])]
        # Local search: n_steps edits, each a decision then one of its options (drawn among all options, masked).
        decision_logits, option_logits = [], []
        global_options = np.zeros((batch, self.n_steps), dtype=np.int64)
        for step in range(self.n_steps):
            h, c = self.lstm(x, (h, c))
            decision_logits.append(self.decision_head(h))
            decision = choose(1 + 2 * step, lambda: self._probabilities(decision_logits[-1], self.decision_tanh))
            tokens[:, 1 + 2 * step] = decision
            x = self.decision_embedding.weight[torch.from_numpy(decision)]
            h, c = self.lstm(x, (h, c))
            option_logits.append(self.option_head(h))
            valid = self._option_masks_np[decision]
            option = choose(2 + 2 * step, lambda: self._probabilities(option_logits[-1], self.option_tanh, valid))
            global_options[:, step] = option
            tokens[:, 2 + 2 * step] = option - offsets[decision]
            x = self.option_embedding.weight[torch.from_numpy(option)]
        # The differentiable part, once for all tokens of a kind.
        subspace_lp, subspace_entropy = self._score(attention.unsqueeze(1), self.subspace_tanh, tokens[:, :1])
        decision_lp, decision_entropy = self._score(
            torch.stack(decision_logits, dim=1), self.decision_tanh, tokens[:, 1::2]
        )
        valid = self.option_masks[torch.from_numpy(tokens[:, 1::2])]
        option_lp, option_entropy = self._score(torch.stack(option_logits, dim=1), self.option_tanh, global_options, valid)
        return Rollout(
            tokens, subspace_lp + decision_lp + option_lp, subspace_entropy + decision_entropy + option_entropy
        )

    def sample(self, node_embeddings: torch.Tensor, rng: np.random.Generator, batch: int = 1) -> Rollout:
        def draw(_: int, probabilities: Callable[[], np.ndarray]) -> np.ndarray:
            p = probabilities()
            cumulative = np.cumsum(p, axis=1)
            u = rng.random(len(p)) * cumulative[:, -1]
            return np.minimum((cumulative <= u[:, None]).sum(axis=1), p.shape[1] - 1)

        return self.rollout(node_embeddings, draw, batch)

    def replay(self, node_embeddings: torch.Tensor, tokens: np.ndarray) -> Rollout:
        tokens = np.asarray(tokens, dtype=np.int64).reshape(-1, 1 + 2 * self.n_steps)
        offsets = np.asarray(self.offsets)
        limits = [len(node_embeddings)] + [len(self.sizes), None] * self.n_steps

        def recorded(position: int, _: Callable[[], np.ndarray]) -> np.ndarray:
            token = tokens[:, position]
            limit = limits[position]
            if limit is None:  # an option: stored relative to its decision
                decision = tokens[:, position - 1]
                limit = offsets[decision + 1] - offsets[decision]
                token = token + offsets[decision]
                if (tokens[:, position] < 0).any() or (tokens[:, position] >= limit).any():
                    raise ValueError(f"recorded option tokens {tokens[:, position].tolist()} are out of range")
            elif (token < 0).any() or (token >= limit).any():
                raise ValueError(f"recorded tokens {token.tolist()} at position {position} are out of range")
            return token

        return self.rollout(node_embeddings, recorded, len(tokens))

    @staticmethod
    def edits(tokens: Sequence[int]) -> list[tuple[int, int]]:
        """The (decision, option) edits encoded by one rollout's tokens (after the subspace token)."""
        return [(int(tokens[i]), int(tokens[i + 1])) for i in range(1, len(tokens), 2)]
