"""The ASE-NAS policy: an edge-aware graph network over the candidate set and an LSTM controller.

One rollout emits ``1 + 2 * n_steps`` tokens: the subspace (candidate) index, then ``n_steps`` times a decision
index and an option index for it. Rollouts run as a batch: the searcher draws a few at once (the later ones are
redraws for when the first lands on a known architecture), which costs about as much as one.

Sampling (:meth:`AseNasPolicy.sample`) steps the LSTM token by token, in numpy, without autograd. Learning scores recorded
tokens (:meth:`AseNasPolicy.score`, teacher forcing): the inputs of every step are then known, so the LSTM runs
over the whole sequence in one call, forward and backward, about three times faster than step by step. A pending
proposal is thus always scored under the parameters current when its result arrives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["AseNasPolicy", "CandidateGraph", "EdgeSageLayer"]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # no overflow warnings for large |x|


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
        self._option_masks_np = masks.numpy()
        # numpy views of the parameters for sample(): the optimizer and load_state_dict update them in place
        self._numpy_parameters = {name: value.detach().numpy() for name, value in self.named_parameters()}

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

    def sample(self, node_embeddings: torch.Tensor, rng: np.random.Generator, batch: int = 1) -> np.ndarray:
        """``batch`` rollouts: tokens (B, 1 + 2 * n_steps), option tokens relative to their decision.

        Runs in numpy on the current parameters (views, no copies): drawing needs no gradients, and at this size
        numpy's per-operation cost is a fraction of torch's. :meth:`score` computes the same distributions.
        """
        w = self._numpy_parameters
        w_ih, w_hh = w["lstm.weight_ih_l0"].T, w["lstm.weight_hh_l0"].T
        bias = w["lstm.bias_ih_l0"] + w["lstm.bias_hh_l0"]

        def lstm(x: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            i, f, g, o = np.split(x @ w_ih + h @ w_hh + bias, 4, axis=1)  # PyTorch's gate order
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            return _sigmoid(o) * np.tanh(c), c

        def draw(logits: np.ndarray, c: float, valid: np.ndarray | None = None) -> np.ndarray:
            p = self._probabilities(logits, c, valid)
            cumulative = np.cumsum(p, axis=1)
            u = rng.random(len(p)) * cumulative[:, -1]
            return np.minimum((cumulative <= u[:, None]).sum(axis=1), p.shape[1] - 1)

        embeddings = node_embeddings.detach().numpy()
        tokens = np.zeros((batch, 1 + 2 * self.n_steps), dtype=np.int64)
        offsets = np.asarray(self.offsets)
        # Global search: attention of the LSTM state over the candidates picks the subspace.
        h = c = np.zeros((batch, w_hh.shape[0]), dtype=np.float32)
        h, c = lstm(np.broadcast_to(embeddings.mean(axis=0), (batch, embeddings.shape[1])), h, c)
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

    def score(self, node_embeddings: torch.Tensor, tokens: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probability and entropy, summed over each rollout's tokens (B, 1 + 2 * n_steps): two (B,) tensors.

        Raises ValueError for tokens out of range (a state saved for another space)."""
        tokens = np.asarray(tokens, dtype=np.int64).reshape(-1, 1 + 2 * self.n_steps)
        subspace, decisions, options = tokens[:, 0], tokens[:, 1::2], tokens[:, 2::2]
        sizes = np.asarray(self.sizes)
        if (subspace < 0).any() or (subspace >= len(node_embeddings)).any():
            raise ValueError(f"recorded subspace tokens {subspace.tolist()} are out of range")
        if (decisions < 0).any() or (decisions >= len(sizes)).any():
            raise ValueError(f"recorded decision tokens {decisions.tolist()} are out of range")
        if (options < 0).any() or (options >= sizes[decisions]).any():
            raise ValueError(f"recorded option tokens {options.tolist()} are out of range")
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

    @staticmethod
    def edits(tokens: Sequence[int]) -> list[tuple[int, int]]:
        """The (decision, option) edits encoded by one rollout's tokens (after the subspace token)."""
        return [(int(tokens[i]), int(tokens[i + 1])) for i in range(1, len(tokens), 2)]
