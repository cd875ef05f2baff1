"""Accuracy predictors: configuration, networks, and the self-contained :class:`Predictor`.

Two kinds (paper Section 3.2, Table 2):

* ``supervised``: one architecture in, its (normalised) accuracy out.
* ``fewshot`` (Figure 2, a Relation-Network-like predictor): the encoder embeds a
  support set of architectures with known accuracy and the query; a decoder reads each
  (support, query) pair of embeddings and outputs the accuracy offset between them;
  the prediction combines ``support_acc + offset`` over the support set (uniform mean,
  or softmax weights the decoder also outputs).

Units: accuracies go in and come out in the units of the table (percent). Inside, the
networks see normalised targets (``target_norm``); the normalisation is stored with the
predictor.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn as nn

from wpnas.config import check_device_string, from_dict, resolve_device, to_dict
from wpnas.errors import ArchitectureError, CheckpointError, ConfigError
from wpnas.predictors.encoders import EncodedBatch, build_encoder, to_batch
from wpnas.predictors.losses import LossConfig
from wpnas.spaces.base import SearchSpace

__all__ = ["PredictorConfig", "Predictor", "RelationNet", "SupervisedNet", "build_net", "load_predictor"]

CHECKPOINT_FORMAT = "wpnas.predictor/1"


@dataclass(frozen=True)
class PredictorConfig:
    """Everything that defines a predictor and how it is trained.

    Defaults (chosen by 5-fold cross-validation inside the 170 training pairs of NB201 and
    NATS-SSS draws, never on validation architectures): an ensemble of 3 trained for 35
    epochs at Adam lr 3e-3 (same compute as one model for 100 epochs, +0.01..0.015 Kendall
    tau), ranking loss only, z-scored targets, affine calibration to the accuracy scale.
    :meth:`paper` gives the paper's settings instead.

    Model: ``kind``, ``encoder`` and sizes (``embed_dim``: token embeddings of the RNN and
    Transformer; ``hidden``: MLP layers, LSTM state, Transformer feed-forward, GCN nodes;
    ``out_dim``: D of the embedding; ``layers``; ``heads``), ``use_ordinal`` (append the ordered choice position; useful where choices
    are ordered, e.g. channel counts), few-shot ``relation`` ('concat' as in the paper,
    or 'antisymmetric': d(s, q) - d(q, s), so swapping support and query flips the
    offset) and ``support_weighting`` ('mean' or 'attention': softmax weights the
    decoder outputs per pair).

    Training: ``epochs`` passes over the training pairs in mini-batches of
    ``batch_size`` (few-shot: one episode per batch of queries, each with a fresh random
    support set of ``support_size``), ``optimizer``/``lr``/``momentum``/
    ``weight_decay``, cosine learning-rate decay when ``cosine``. Loss: see
    :class:`~wpnas.predictors.losses.LossConfig`; MSE is computed on normalised targets.
    Few-shot only: ``compare_weight`` adds :func:`~wpnas.predictors.losses.comparison_loss`
    on every (support, query) offset (is the query better than this support arch?).
    ``ensemble`` members are trained with seeds ``seed, seed+1, ...`` and averaged.

    ``target_norm``: 'zscore' (training mean/std), 'fraction' (accuracy / 100) or
    'none'. ``calibrate``: after training, fit ``a * score + b`` (a > 0) to the training
    targets by least squares, so a ranking-only predictor still answers on the accuracy
    scale (an increasing affine map: the ranking is unchanged).

    ``inference_support``: how many training pairs a few-shot predictor carries for
    prediction (0 = ``support_size``, -1 = all; at most the number of training pairs),
    chosen at random or spread evenly over the accuracy range ('stratified').

    Units: inputs and predictions are accuracies in percent. The benchmark reports MSE on
    accuracy as a fraction (accuracy / 100), i.e. in fraction^2.
    """

    kind: Literal["supervised", "fewshot"] = "fewshot"
    encoder: Literal["mlp", "rnn", "transformer", "gcn"] = "mlp"
    embed_dim: int = 32
    hidden: int = 128
    out_dim: int = 64
    layers: int = 2
    heads: int = 4
    dropout: float = 0.0
    use_ordinal: bool = False
    decoder_hidden: int = 64
    decoder_layers: int = 2
    relation: Literal["concat", "antisymmetric"] = "concat"
    support_weighting: Literal["mean", "attention"] = "mean"
    epochs: int = 35
    optimizer: Literal["sgd", "adam"] = "adam"
    lr: float = 3e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    cosine: bool = True
    batch_size: int = 32
    support_size: int = 30
    inference_support: int = 0
    support_selection: Literal["random", "stratified"] = "random"
    loss: Literal["ranking", "mse", "ranking+mse"] = "ranking"
    ranking: Literal["logistic", "hinge"] = "logistic"
    margin: float = 0.1
    ranking_weight: float = 1.0
    mse_weight: float = 1.0
    compare_weight: float = 0.0
    target_norm: Literal["zscore", "fraction", "none"] = "zscore"
    calibrate: bool = True
    ensemble: int = 3
    grad_clip: float = 10.0
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        positive = ("embed_dim", "hidden", "out_dim", "layers", "heads", "decoder_hidden", "decoder_layers",
                    "epochs", "batch_size", "support_size", "ensemble")
        for name in positive:
            value = getattr(self, name)
            if value < 1:
                raise ConfigError(f"predictor.{name}: {value} must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"predictor.dropout: {self.dropout} must be in [0, 1)")
        if self.lr <= 0 or self.weight_decay < 0 or self.momentum < 0 or self.grad_clip < 0:
            raise ConfigError(
                f"predictor: lr ({self.lr}) must be > 0; weight_decay ({self.weight_decay}), momentum "
                f"({self.momentum}) and grad_clip ({self.grad_clip}) must be >= 0"
            )
        if self.inference_support < -1:
            raise ConfigError(
                f"predictor.inference_support: {self.inference_support} must be >= -1 "
                "(0 = support_size, -1 = every training pair)"
            )
        if self.ranking_weight < 0 or self.mse_weight < 0 or self.compare_weight < 0:
            raise ConfigError("predictor: ranking_weight, mse_weight and compare_weight must be >= 0")
        if self.encoder == "transformer" and self.embed_dim % self.heads:
            raise ConfigError(f"predictor.embed_dim={self.embed_dim} must be divisible by predictor.heads={self.heads}")
        check_device_string(self.device, "device")

    @classmethod
    def paper(cls, **overrides: Any) -> PredictorConfig:
        """The paper's Table 2 settings: support 30, 100 epochs, SGD lr 1e-4, ranking loss only.

        Unstated in the paper and filled in here: momentum 0.9, batch 32, no weight decay,
        targets as fractions, no calibration. With these, 100 epochs (~600 steps) barely
        move the weights (Kendall tau ~0 on NB201/SSS in our runs); kept for comparison."""
        base = dict(
            epochs=100, optimizer="sgd", lr=1e-4, momentum=0.9, weight_decay=0.0, cosine=False,
            support_size=30, inference_support=0, support_selection="random", loss="ranking",
            target_norm="fraction", calibrate=False, ensemble=1, relation="concat", support_weighting="mean",
        )
        base.update(overrides)
        return from_dict(cls, base, where="predictor (paper preset)")

    @property
    def min_train_pairs(self) -> int:
        """Fewest training pairs this predictor can learn from (few-shot: a support set plus a query)."""
        return self.support_size + 1 if self.kind == "fewshot" else 2

    @property
    def loss_config(self) -> LossConfig:
        return LossConfig(self.loss, self.ranking, self.margin, self.ranking_weight, self.mse_weight)

    def replace(self, **changes: Any) -> PredictorConfig:
        return from_dict(PredictorConfig, {**to_dict(self), **changes}, where="predictor")


# -- networks ------------------------------------------------------------------------------


def _encoder(cfg: PredictorConfig, space: SearchSpace) -> nn.Module:
    return build_encoder(
        cfg.encoder, space.num_decisions, space.max_choices, embed_dim=cfg.embed_dim, hidden=cfg.hidden,
        out_dim=cfg.out_dim, layers=cfg.layers, heads=cfg.heads, dropout=cfg.dropout, use_ordinal=cfg.use_ordinal,
    )


class SupervisedNet(nn.Module):
    """Encoder + MLP head -> one normalised accuracy per architecture."""

    def __init__(self, cfg: PredictorConfig, space: SearchSpace) -> None:
        super().__init__()
        self.encoder = _encoder(cfg, space)
        sizes = [cfg.out_dim] + [cfg.decoder_hidden] * (cfg.decoder_layers - 1) + [1]
        layers: list[nn.Module] = [nn.ReLU()]
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        self.head = nn.Sequential(*layers)

    def forward(self, batch: EncodedBatch) -> torch.Tensor:
        return self.head(self.encoder(batch)).squeeze(-1)


class RelationNet(nn.Module):
    """Encoder + relation decoder over (support, query) embedding pairs.

    The decoder's first layer acts on ``concat(e_s, e_q)``; it is applied as
    ``W_s e_s + W_q e_q`` so the (Q, S) pair grid never materialises the concatenation.
    """

    def __init__(self, cfg: PredictorConfig, space: SearchSpace) -> None:
        super().__init__()
        self.encoder = _encoder(cfg, space)
        self.antisymmetric = cfg.relation == "antisymmetric"
        self.attention = cfg.support_weighting == "attention"
        h = cfg.decoder_hidden
        self.w_support = nn.Linear(cfg.out_dim, h)
        self.w_query = nn.Linear(cfg.out_dim, h, bias=False)
        rest: list[nn.Module] = []
        for _ in range(cfg.decoder_layers - 1):
            rest += [nn.ReLU(), nn.Linear(h, h)]
        rest += [nn.ReLU(), nn.Linear(h, 2)]  # offset, attention logit
        self.rest = nn.Sequential(*rest)

    def embed(self, batch: EncodedBatch) -> torch.Tensor:
        return self.encoder(batch)

    def _decode(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        # first: (S, D) support role, second: (Q, D) query role -> (Q, S, 2)
        return self.rest(self.w_support(first)[None, :, :] + self.w_query(second)[:, None, :])

    def relate(self, e_query: torch.Tensor, e_support: torch.Tensor, y_support: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """(Q,) combined predictions and (Q, S) per-support estimates ``y_s + offset``."""
        out = self._decode(e_support, e_query)
        offset = out[..., 0]
        logit = out[..., 1]
        if self.antisymmetric:
            swapped = self._decode(e_query, e_support).transpose(0, 1)  # d(q, s) laid out as (Q, S)
            offset = offset - swapped[..., 0]
            logit = logit + swapped[..., 1]
        pair = y_support[None, :] + offset
        if self.attention:
            weights = torch.softmax(logit, dim=1)
        else:
            weights = torch.full_like(pair, 1.0 / pair.shape[1])
        return (weights * pair).sum(dim=1), pair

    def forward(self, query: EncodedBatch, support: EncodedBatch, y_support: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        # one encoder pass over query + support (sequential encoders cost per call, not per row)
        both = EncodedBatch(
            torch.cat([query.tokens, support.tokens]),
            torch.cat([query.onehot, support.onehot]),
            torch.cat([query.ordinal, support.ordinal]),
            query.adjacency,
        )
        e = self.embed(both)
        return self.relate(e[: len(query)], e[len(query):], y_support)


def build_net(cfg: PredictorConfig, space: SearchSpace) -> nn.Module:
    return SupervisedNet(cfg, space) if cfg.kind == "supervised" else RelationNet(cfg, space)


# -- the predictor --------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetNorm:
    """``normalised = (accuracy - shift) / scale``."""

    shift: float
    scale: float

    @classmethod
    def fit(cls, mode: str, values: np.ndarray) -> TargetNorm:
        if mode == "zscore":
            std = float(np.std(values))
            return cls(float(np.mean(values)), std if std > 0 else 1.0)
        if mode == "fraction":
            return cls(0.0, 100.0)
        return cls(0.0, 1.0)

    def forward(self, values: np.ndarray) -> np.ndarray:
        return (np.asarray(values, dtype=np.float64) - self.shift) / self.scale

    def inverse(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=np.float64) * self.scale + self.shift


#: Accuracies are percentages; predictions are clipped to this range.
ACCURACY_RANGE = (0.0, 100.0)


class Predictor:
    """A trained predictor: networks (an ensemble of one or more), target normalisation and,
    for few-shot, the support set it compares against. ``predict`` needs nothing else."""

    def __init__(
        self,
        space: SearchSpace,
        config: PredictorConfig,
        nets: list[nn.Module],
        norm: TargetNorm,
        support_tokens: np.ndarray | None = None,
        support_accuracy: np.ndarray | None = None,
        calibration: tuple[float, float] = (1.0, 0.0),
    ) -> None:
        self.space = space
        self.calibration = (float(calibration[0]), float(calibration[1]))
        self.config = config
        self.nets = nets
        self.norm = norm
        self.device = resolve_device(config.device)
        for net in self.nets:
            net.to(self.device).eval()
        if config.kind == "fewshot":
            if support_tokens is None or support_accuracy is None or len(support_tokens) == 0:
                raise ConfigError("a few-shot predictor needs a non-empty support set")
            self.support_tokens = np.asarray(support_tokens, dtype=np.int64)
            self.support_accuracy = np.asarray(support_accuracy, dtype=np.float64)
        else:
            self.support_tokens = None
            self.support_accuracy = None

    @property
    def kind(self) -> str:
        return self.config.kind

    @property
    def support_strings(self) -> list[str]:
        if self.support_tokens is None:
            return []
        return [self.space.to_string(t) for t in self.support_tokens]

    def _tokens(self, archs: Iterable[Any]) -> np.ndarray:
        if isinstance(archs, np.ndarray) and archs.dtype.kind in "iu" and archs.ndim == 2:
            tokens = archs.astype(np.int64)
            if tokens.shape[1] != self.space.num_decisions:
                raise ArchitectureError(
                    f"{self.space.name}: token array has {tokens.shape[1]} columns, expected {self.space.num_decisions}"
                )
            sizes = np.asarray(self.space.num_choices)
            if (tokens < 0).any() or (tokens >= sizes[None, :]).any():
                raise ArchitectureError(f"{self.space.name}: token array has choices out of range")
            return tokens
        parsed = [self.space.parse(a) for a in archs]
        return np.asarray(parsed, dtype=np.int64).reshape(len(parsed), self.space.num_decisions)

    @torch.no_grad()
    def predict_normalised(self, archs: Iterable[Any] | np.ndarray, chunk: int = 4096) -> np.ndarray:
        tokens = self._tokens(archs)
        if len(tokens) == 0:
            return np.zeros(0, dtype=np.float64)
        total = np.zeros(len(tokens), dtype=np.float64)
        if self.kind == "fewshot":
            support = to_batch(self.space.encode_tokens(self.support_tokens), self.device)
            y_s = torch.as_tensor(self.norm.forward(self.support_accuracy), dtype=torch.float32, device=self.device)
            # keep the (chunk, S, hidden) decoder activations around 16M floats
            chunk = max(1, min(chunk, 16_000_000 // max(1, len(self.support_tokens) * self.config.decoder_hidden)))
        for net in self.nets:
            if self.kind == "fewshot":
                e_s = net.embed(support)
            for start in range(0, len(tokens), chunk):
                part = to_batch(self.space.encode_tokens(tokens[start:start + chunk]), self.device)
                if self.kind == "fewshot":
                    out, _ = net.relate(net.embed(part), e_s, y_s)
                else:
                    out = net(part)
                total[start:start + len(part)] += out.double().cpu().numpy()
        a, b = self.calibration
        return a * (total / len(self.nets)) + b

    def predict(self, archs: Iterable[Any] | np.ndarray) -> np.ndarray:
        """Predicted accuracy in percent for strings, tuples or an (N, L) int array of choice indices.

        This is the one place predictions leave the predictor, and they are clipped to
        [0, 100] here: the networks and the affine calibration are unbounded (a default run
        once predicted 101.77 %). Training and calibration work on the unclipped
        ``predict_normalised``."""
        return np.clip(self.norm.inverse(self.predict_normalised(archs)), ACCURACY_RANGE[0], ACCURACY_RANGE[1])

    # -- checkpoints -----------------------------------------------------------------------
    def to_checkpoint(self) -> dict[str, Any]:
        """Plain dict for ``torch.save``: config, space, normalisation, support set (strings), weights."""
        return {
            "format": CHECKPOINT_FORMAT,
            "config": to_dict(self.config),
            "space": self.space.describe(),
            "norm": {"shift": self.norm.shift, "scale": self.norm.scale},
            "calibration": list(self.calibration),
            "support": None if self.support_tokens is None else {
                "archs": self.support_strings,
                "accuracy": [float(a) for a in self.support_accuracy],
            },
            "state_dicts": [{k: v.detach().cpu() for k, v in net.state_dict().items()} for net in self.nets],
        }

    state_dict_full = to_checkpoint


def load_predictor(checkpoint: dict[str, Any], space: SearchSpace, device: str | None = None) -> Predictor:
    """Rebuild a :class:`Predictor` from :meth:`Predictor.to_checkpoint` for ``space``.

    ``device`` overrides the saved one; by default the saved device is used when it exists
    here, else the CPU."""
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        found = checkpoint.get("format") if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise CheckpointError(f"not a predictor checkpoint (format {found!r}, expected {CHECKPOINT_FORMAT!r})")
    saved_space = checkpoint.get("space", {})
    if saved_space != space.describe():
        raise CheckpointError(
            f"predictor checkpoint was written for space {saved_space}, not {space.describe()}"
        )
    try:
        cfg_dict = dict(checkpoint["config"])
        if device is not None:
            cfg_dict["device"] = device
        else:
            # a predictor trained on a GPU still loads on a machine without one
            try:
                resolve_device(str(cfg_dict.get("device", "cpu")))
            except ConfigError:
                cfg_dict["device"] = "cpu"
        cfg = from_dict(PredictorConfig, cfg_dict, where="predictor checkpoint config")
        norm = TargetNorm(float(checkpoint["norm"]["shift"]), float(checkpoint["norm"]["scale"]))
        support = checkpoint.get("support")
        tokens = accuracy = None
        if support is not None:
            tokens = np.asarray([space.from_string(s) for s in support["archs"]], dtype=np.int64)
            accuracy = np.asarray(support["accuracy"], dtype=np.float64)
        nets = []
        for state in checkpoint["state_dicts"]:
            net = build_net(cfg, space)
            net.load_state_dict(state)
            nets.append(net)
    except (KeyError, TypeError, RuntimeError, ConfigError, ArchitectureError) as err:
        raise CheckpointError(f"predictor checkpoint is inconsistent: {type(err).__name__}: {err}") from err
    if not nets:
        raise CheckpointError("predictor checkpoint holds no networks")
    calibration = tuple(checkpoint.get("calibration", (1.0, 0.0)))
    return Predictor(space, cfg, nets, norm, tokens, accuracy, calibration)

