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

    def _squash(self, logits: torch.Tensor, c: float) -> torch.Tensor:
        return c * torch.tanh(logits / self.temperature)

    def embed(self, graph: CandidateGraph) -> torch.Tensor:
        h, e = graph.nodes, graph.edge_features
        for layer in self.graph_layers:
            h, e = layer(h, e, graph)
        return h

    def rollout(self, node_embeddings: torch.Tensor, choose: Callable[[int, np.ndarray], np.ndarray], batch: int) -> Rollout:
        """Run ``batch`` controller rollouts over ``embed(graph)``. ``choose(position, probabilities (B, n))`` returns
        the B tokens at that position (a sampler, or a replay of recorded tokens)."""
        keys = self.attention_key(node_embeddings)
        rows = torch.arange(batch)
        tokens = np.zeros((batch, 1 + 2 * self.n_steps), dtype=np.int64)
        log_probs: list[torch.Tensor] = []
        entropies: list[torch.Tensor] = []

        def emit(logits: torch.Tensor, valid: torch.Tensor | None = None) -> np.ndarray:
            if valid is not None:  # option logits: only the chosen decision's options
                logits = logits.masked_fill(~valid, float("-inf"))
            log_p = F.log_softmax(logits, dim=-1)
            p = log_p.exp()
            position = len(log_probs)
            token = choose(position, p.detach().numpy())
            tokens[:, position] = token
            log_probs.append(log_p[rows, torch.from_numpy(token)])
            entropies.append(-(p * (log_p if valid is None else log_p.masked_fill(~valid, 0.0))).sum(dim=-1))
            return token

        # Global search: attention of the LSTM state over the candidates picks the subspace.
        h, c = self.lstm(node_embeddings.mean(dim=0, keepdim=True).expand(batch, -1))
        attention = self.attention_score(torch.tanh(keys.unsqueeze(0) + self.attention_query(h).unsqueeze(1)))
        subspace = emit(self._squash(attention.squeeze(-1), self.subspace_tanh))
        x = node_embeddings[torch.from_numpy(subspace)]
        # Local search: n_steps edits, each a decision then one of its options.
        offsets = np.asarray(self.offsets)
        for _ in range(self.n_steps):
            h, c = self.lstm(x, (h, c))
            decision = emit(self._squash(self.decision_head(h), self.decision_tanh))
            x = self.decision_embedding.weight[torch.from_numpy(decision)]
            h, c = self.lstm(x, (h, c))
            valid = self.option_masks[torch.from_numpy(decision)]
            option = emit(self._squash(self.option_head(h), self.option_tanh), valid)  # index into all options
            x = self.option_embedding.weight[torch.from_numpy(option)]
            tokens[:, len(log_probs) - 1] = option - offsets[decision]
        return Rollout(tokens, torch.stack(log_probs, dim=1).sum(dim=1), torch.stack(entropies, dim=1).sum(dim=1))

    def sample(self, node_embeddings: torch.Tensor, rng: np.random.Generator, batch: int = 1) -> Rollout:
        def draw(_: int, p: np.ndarray) -> np.ndarray:
            cumulative = np.cumsum(p, axis=1, dtype=np.float64)
            u = rng.random(len(p)) * cumulative[:, -1]
            return np.minimum((cumulative <= u[:, None]).sum(axis=1), p.shape[1] - 1)

        return self.rollout(node_embeddings, draw, batch)

    def replay(self, node_embeddings: torch.Tensor, tokens: np.ndarray) -> Rollout:
        tokens = np.asarray(tokens, dtype=np.int64).reshape(-1, 1 + 2 * self.n_steps)
        offsets = np.asarray(self.offsets)

        def recorded(position: int, p: np.ndarray) -> np.ndarray:
            token = tokens[:, position]
            if position > 0 and position % 2 == 0:  # an option: stored relative to its decision
                decision = tokens[:, position - 1]
                if (token >= offsets[decision + 1] - offsets[decision]).any() or (token < 0).any():
                    raise ValueError(f"recorded option tokens {token.tolist()} are out of range")
                token = token + offsets[decision]
            elif (token < 0).any() or (token >= p.shape[1]).any():
                raise ValueError(f"recorded tokens {token.tolist()} at position {position} are out of range")
            return token

        return self.rollout(node_embeddings, recorded, len(tokens))

    @staticmethod
    def edits(tokens: Sequence[int]) -> list[tuple[int, int]]:
        """The (decision, option) edits encoded by one rollout's tokens (after the subspace token)."""
        return [(int(tokens[i]), int(tokens[i + 1])) for i in range(1, len(tokens), 2)]
