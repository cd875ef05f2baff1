"""Architecture encoders: an :class:`~wpnas.spaces.base.ArchEncoding` batch -> (B, D) embeddings.

All four read only what ``SearchSpace.encode`` provides (tokens, one-hot, ordinal,
decision graph), so they work for every space. Tokens are made unique per decision by
offsetting them by ``decision * K``: the same choice index at two decisions (op 3 on
edge 0 vs edge 5, 32 channels at layer 0 vs layer 4) gets its own embedding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from wpnas.errors import ConfigError
from wpnas.spaces.base import ArchEncoding

__all__ = ["ENCODERS", "EncodedBatch", "GCNEncoder", "MLPEncoder", "RNNEncoder", "TransformerEncoder", "build_encoder", "to_batch"]


@dataclass(frozen=True)
class EncodedBatch:
    """Torch view of an ArchEncoding on one device."""

    tokens: torch.Tensor  # (B, L) int64
    onehot: torch.Tensor  # (B, L, K) float32
    ordinal: torch.Tensor  # (B, L) float32
    adjacency: torch.Tensor  # (L, L) float32

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def select(self, index: torch.Tensor) -> EncodedBatch:
        return EncodedBatch(self.tokens[index], self.onehot[index], self.ordinal[index], self.adjacency)


def to_batch(enc: ArchEncoding, device: torch.device | str = "cpu") -> EncodedBatch:
    return EncodedBatch(
        torch.as_tensor(enc.tokens, dtype=torch.long, device=device),
        torch.as_tensor(enc.onehot, dtype=torch.float32, device=device),
        torch.as_tensor(enc.ordinal, dtype=torch.float32, device=device),
        torch.as_tensor(enc.adjacency, dtype=torch.float32, device=device),
    )


def _offset_tokens(tokens: torch.Tensor, max_choices: int) -> torch.Tensor:
    positions = torch.arange(tokens.shape[1], device=tokens.device)
    return tokens + positions[None, :] * max_choices


def _mlp(sizes: list[int], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """Flattened one-hot (optionally + ordinal) through ``layers`` hidden layers."""

    def __init__(self, num_decisions: int, max_choices: int, hidden: int, out_dim: int, layers: int,
                 dropout: float = 0.0, use_ordinal: bool = False) -> None:
        super().__init__()
        self.use_ordinal = use_ordinal
        width = num_decisions * max_choices + (num_decisions if use_ordinal else 0)
        self.net = _mlp([width] + [hidden] * layers + [out_dim], dropout)

    def forward(self, batch: EncodedBatch) -> torch.Tensor:
        x = batch.onehot.flatten(1)
        if self.use_ordinal:
            x = torch.cat([x, batch.ordinal], dim=1)
        return self.net(x)


class _TokenEmbedding(nn.Module):
    """Per-decision choice embedding (+ a linear map of the ordinal value)."""

    def __init__(self, num_decisions: int, max_choices: int, dim: int, use_ordinal: bool) -> None:
        super().__init__()
        self.max_choices = max_choices
        self.table = nn.Embedding(num_decisions * max_choices, dim)
        self.ordinal = nn.Linear(1, dim) if use_ordinal else None

    def forward(self, batch: EncodedBatch) -> torch.Tensor:
        x = self.table(_offset_tokens(batch.tokens, self.max_choices))
        if self.ordinal is not None:
            x = x + self.ordinal(batch.ordinal.unsqueeze(-1))
        return x


class RNNEncoder(nn.Module):
    """Bidirectional LSTM over the decisions; mean of the outputs, then a linear map."""

    def __init__(self, num_decisions: int, max_choices: int, embed_dim: int, hidden: int, out_dim: int,
                 layers: int, dropout: float = 0.0, use_ordinal: bool = False) -> None:
        super().__init__()
        self.embed = _TokenEmbedding(num_decisions, max_choices, embed_dim, use_ordinal)
        self.lstm = nn.LSTM(embed_dim, hidden, num_layers=layers, batch_first=True, bidirectional=True,
                            dropout=dropout if layers > 1 else 0.0)
        self.out = nn.Linear(2 * hidden, out_dim)

    def forward(self, batch: EncodedBatch) -> torch.Tensor:
        seq, _ = self.lstm(self.embed(batch))
        return self.out(seq.mean(dim=1))


class TransformerEncoder(nn.Module):
    """Token + position embeddings, a small TransformerEncoder, mean pooling."""

    def __init__(self, num_decisions: int, max_choices: int, embed_dim: int, hidden: int, out_dim: int,
                 layers: int, heads: int, dropout: float = 0.0, use_ordinal: bool = False) -> None:
        super().__init__()
        if embed_dim % heads:
            raise ConfigError(f"predictor.embed_dim={embed_dim} must be divisible by predictor.heads={heads}")
        self.embed = _TokenEmbedding(num_decisions, max_choices, embed_dim, use_ordinal)
        self.position = nn.Parameter(torch.zeros(num_decisions, embed_dim))
        nn.init.normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(embed_dim, heads, dim_feedforward=hidden, dropout=dropout,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(embed_dim)
        self.out = nn.Linear(embed_dim, out_dim)

    def forward(self, batch: EncodedBatch) -> torch.Tensor:
        x = self.embed(batch) + self.position[None]
        x = self.norm(self.encoder(x))
        return self.out(x.mean(dim=1))


def normalized_adjacency(adjacency: torch.Tensor) -> torch.Tensor:
    """D^-1/2 (A + A^T + I) D^-1/2: information flows both ways along the decision graph."""
    a = ((adjacency + adjacency.T) > 0).to(adjacency.dtype)
    a = a + torch.eye(a.shape[0], dtype=a.dtype, device=a.device)
    a = a.clamp(max=1.0)
    d = a.sum(dim=1).rsqrt()
    return d[:, None] * a * d[None, :]


class GCNEncoder(nn.Module):
    """Nodes = decisions; node features = the decision's one-hot (+ ordinal), read through a
    per-decision input map (a choice means different things at different decisions);
    residual graph convolutions over the normalised decision graph; mean pooling."""

    def __init__(self, num_decisions: int, max_choices: int, embed_dim: int, hidden: int, out_dim: int,
                 layers: int, dropout: float = 0.0, use_ordinal: bool = False) -> None:
        super().__init__()
        self.use_ordinal = use_ordinal
        features = max_choices + (1 if use_ordinal else 0)
        self.inp = nn.Parameter(torch.randn(num_decisions, features, hidden) / features**0.5)
        self.inp_bias = nn.Parameter(torch.zeros(num_decisions, hidden))
        self.convs = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(layers))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.out = nn.Linear(hidden, out_dim)

    def forward(self, batch: EncodedBatch) -> torch.Tensor:
        x = batch.onehot
        if self.use_ordinal:
            x = torch.cat([x, batch.ordinal.unsqueeze(-1)], dim=-1)
        h = torch.einsum("blk,lkd->bld", x, self.inp) + self.inp_bias[None]
        a = normalized_adjacency(batch.adjacency)
        for conv in self.convs:
            h = h + self.dropout(torch.relu(conv(torch.einsum("ij,bjd->bid", a, h))))
        return self.out(h.mean(dim=1))


ENCODERS = ("mlp", "rnn", "transformer", "gcn")


def build_encoder(kind: str, num_decisions: int, max_choices: int, *, embed_dim: int, hidden: int,
                  out_dim: int, layers: int, heads: int, dropout: float, use_ordinal: bool) -> nn.Module:
    if kind == "mlp":
        return MLPEncoder(num_decisions, max_choices, hidden, out_dim, layers, dropout, use_ordinal)
    if kind == "rnn":
        return RNNEncoder(num_decisions, max_choices, embed_dim, hidden, out_dim, layers, dropout, use_ordinal)
    if kind == "transformer":
        return TransformerEncoder(num_decisions, max_choices, embed_dim, hidden, out_dim, layers, heads, dropout,
                                  use_ordinal)
    if kind == "gcn":
        return GCNEncoder(num_decisions, max_choices, embed_dim, hidden, out_dim, layers, dropout, use_ordinal)
    raise ConfigError(f"predictor.encoder: {kind!r} unknown; expected one of {list(ENCODERS)}")
