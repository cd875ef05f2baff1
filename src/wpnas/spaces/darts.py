"""The DARTS search space (Liu et al., ICLR 2019) as WPNAS's parent and operation decisions.

A cell has two inputs (nodes 0, 1 = outputs of the cells k-2 and k-1), four inner nodes
(2..5) and outputs the concatenation of the inner nodes. Each inner node i takes two
distinct predecessors and applies one candidate op to each (8 ops: ``DARTS_OPS``). The
network has normal cells and reduction cells (at layers // 3 and 2 * layers // 3); all
normal cells share one genotype, all reduction cells another.

Decisions (paper Section 3.1: parent-node selection and operation selection as
independent categorical decisions), per cell type, normal first, per node i = 2..5:

* ``<cell>.node<i>.inputs``: one of the C(i, 2) unordered pairs {a < b} of its i
  predecessors (1, 3, 6, 10 choices; choice names ``"a+b"``, ordered 0+1, 0+2, 1+2, 0+3, ... (by b, then a),
* ``<cell>.node<i>.op_a``: the op applied to the lower input a (8 choices),
* ``<cell>.node<i>.op_b``: the op applied to the higher input b (8 choices).

That is 12 decisions per cell type, 24 in all (L = 24, K_l in {1, 3, 6, 10, 8}).

Space size: our count is the product of the choice counts,
(1 * 3 * 6 * 10 * 8^8)^2 = 3,019,898,880^2 ~ 9.1e18 (every op, 'none' included, and every
parent pair, so a few architectures compute the same function, e.g. symmetric 'none'
choices). The paper's "3.3e13" is not this count; the only count we can derive that
gives it is 7^16 = 3.32e13: the 7 non-'none' ops on the 16 op slots of the two cells
with the parent nodes held fixed (parent selection not counted). With parents and 7 ops
the count would be (180 * 7^8)^2 ~ 1.1e18.

Genotype strings are DARTS's text form (``to_string``/``from_string``), and the
published genotypes in :data:`GENOTYPES` are accepted by name. Network design (BN and
pooling) is documented in :mod:`wpnas.spaces.darts_network`; the SuperNet and its
weakly-weight-sharing offsets in :mod:`wpnas.spaces.darts_supernet`.

Cost: FLOPs are multiply-accumulates of every conv and the linear layer (plus its bias)
per image, parameters all trainable tensors, in millions (the NATS convention of
:mod:`wpnas.nn.flops`), computed analytically (cached) for the stand-alone network of
the search skeleton.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from wpnas.config import from_dict, to_dict
from wpnas.errors import ArchitectureError, ConfigError
from wpnas.spaces.base import Arch, Cost, Decision, SearchSpace
from wpnas.spaces.darts_network import (
    CONCAT,
    DARTS_OPS,
    INNER_NODES,
    REDUCTIONS,
    CellSpec,
    DartsNetwork,
    Genes,
    darts_plan,
)
from wpnas.spaces.darts_supernet import DartsSuperNet
from wpnas.spaces.nats_skeleton import check_build_args, check_input_shape, check_num_classes
from wpnas.spaces.registry import register_space

CELL_TYPES: tuple[str, ...] = ("normal", "reduce")
#: Parent pairs (a, b), a < b, of each inner node, in choice order.
#: Ordered by the higher input first (0+1, 0+2, 1+2, 0+3, ...), so a pair has the same
#: index at every node that can choose it.
PAIRS: dict[int, tuple[tuple[int, int], ...]] = {
    i: tuple(sorted(itertools.combinations(range(i), 2), key=lambda p: (p[1], p[0]))) for i in INNER_NODES
}
#: Decisions per node: inputs, op of the lower input, op of the higher input.
PER_NODE = 3
PER_CELL = PER_NODE * len(INNER_NODES)

#: Published CIFAR-10 genotypes (DARTS 1st/2nd order, PC-DARTS, P-DARTS), as data.
GENOTYPES: dict[str, str] = {
    "DARTS_V1": (
        "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1), "
        "('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], "
        "normal_concat=[2, 3, 4, 5], "
        "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), "
        "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], "
        "reduce_concat=[2, 3, 4, 5])"
    ),
    "DARTS_V2": (
        "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
        "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
        "normal_concat=[2, 3, 4, 5], "
        "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), "
        "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
        "reduce_concat=[2, 3, 4, 5])"
    ),
    "PC_DARTS": (
        "Genotype(normal=[('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 0), ('dil_conv_3x3', 1), "
        "('sep_conv_5x5', 0), ('sep_conv_3x3', 1), ('avg_pool_3x3', 0), ('dil_conv_3x3', 1)], "
        "normal_concat=range(2, 6), "
        "reduce=[('sep_conv_5x5', 1), ('max_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_5x5', 2), "
        "('sep_conv_3x3', 0), ('sep_conv_3x3', 3), ('sep_conv_3x3', 1), ('sep_conv_3x3', 2)], "
        "reduce_concat=range(2, 6))"
    ),
    "PDARTS": (
        "Genotype(normal=[('skip_connect', 0), ('dil_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), "
        "('sep_conv_3x3', 1), ('sep_conv_3x3', 3), ('sep_conv_3x3', 0), ('dil_conv_5x5', 4)], "
        "normal_concat=range(2, 6), "
        "reduce=[('avg_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_3x3', 0), ('dil_conv_5x5', 2), "
        "('max_pool_3x3', 0), ('dil_conv_3x3', 1), ('dil_conv_3x3', 1), ('dil_conv_5x5', 3)], "
        "reduce_concat=range(2, 6))"
    ),
}

_FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")
_FORM = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ...8 entries], normal_concat=[2, 3, 4, 5], "
    "reduce=[...8 entries], reduce_concat=[2, 3, 4, 5])"
)


@dataclass(frozen=True)
class DartsOptions:
    """Search skeleton: C channels in the first cells, ``layers`` cells, stem of stem_multiplier * C."""

    C: int = 16
    layers: int = 8
    stem_multiplier: int = 3

    def __post_init__(self) -> None:
        if self.C < 1 or self.stem_multiplier < 1:
            raise ConfigError(
                f"darts: C and stem_multiplier must be positive, got C={self.C}, stem_multiplier={self.stem_multiplier}"
            )
        if self.layers < 3:
            raise ConfigError(f"darts: layers must be at least 3 (two reduction cells), got {self.layers}")


@dataclass(frozen=True)
class DartsEvaluationOptions:
    """The network trained from scratch (DARTS: 20 cells, C=36, auxiliary head)."""

    C: int = 36
    layers: int = 20
    auxiliary: bool = False
    layout: str = "cifar"   # imagenet: DARTS's ImageNet network (Table 3: C=48, 14 cells, 224x224)

    def __post_init__(self) -> None:
        if self.layout not in ("cifar", "imagenet"):
            raise ConfigError(f"layout: {self.layout!r} is not one of ['cifar', 'imagenet']")
        if self.C < 1:
            raise ConfigError(f"C: must be positive, got {self.C}")
        if self.layers < 3:
            raise ConfigError(f"layers: must be at least 3 (two reduction cells), got {self.layers}")


def _literal(node: ast.expr, field: str, text: str) -> Any:
    """A literal, or ``range(a, b)`` as a list."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "range"
        and not node.keywords
        and 1 <= len(node.args) <= 3
    ):
        try:
            args = [ast.literal_eval(a) for a in node.args]
        except ValueError:
            args = None
        if args and all(isinstance(a, int) and not isinstance(a, bool) for a in args):
            return list(range(*args))
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise ArchitectureError(f"darts: {field} in {text!r} is not a literal list") from None


def parse_genotype(text: str) -> dict[str, Any]:
    """The four fields of a DARTS genotype string (or a published name) as Python values."""
    if not isinstance(text, str):
        raise ArchitectureError(f"darts: expected a genotype string, got {text!r}")
    source = GENOTYPES.get(text.strip(), text).strip()
    try:
        call = ast.parse(source, mode="eval").body
    except SyntaxError:
        call = None
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "Genotype"):
        raise ArchitectureError(
            f"darts: {text!r} is neither a genotype of the form {_FORM} nor a published name {sorted(GENOTYPES)}"
        )
    if call.args:
        raise ArchitectureError(f"darts: genotype {text!r} must name its fields ({', '.join(_FIELDS)}=...)")
    fields: dict[str, Any] = {}
    for kw in call.keywords:
        if kw.arg not in _FIELDS:
            raise ArchitectureError(f"darts: unknown genotype field {kw.arg!r} in {text!r}; expected {list(_FIELDS)}")
        fields[kw.arg] = _literal(kw.value, kw.arg, text)
    missing = [f for f in _FIELDS if f not in fields]
    if missing:
        raise ArchitectureError(f"darts: genotype {text!r} lacks the field(s) {missing}")
    return fields


def _parse_cell(entries: Any, cell: str, text: str) -> list[int]:
    """Decisions of one cell type from its 8 (op, input) entries."""
    n_entries = 2 * len(INNER_NODES)
    if not isinstance(entries, (list, tuple)) or len(entries) != n_entries:
        count = len(entries) if isinstance(entries, (list, tuple)) else type(entries).__name__
        raise ArchitectureError(
            f"darts: {cell} in {text!r} has {count} entries, expected {n_entries} (two (op, input) pairs per node 2..5)"
        )
    out: list[int] = []
    for n, node in enumerate(INNER_NODES):
        pair = []
        for entry in entries[2 * n : 2 * n + 2]:
            if (
                not isinstance(entry, (list, tuple))
                or len(entry) != 2
                or not isinstance(entry[0], str)
                or isinstance(entry[1], bool)
                or not isinstance(entry[1], int)
            ):
                raise ArchitectureError(f"darts: {cell} node {node} entry {entry!r} is not an (op, input) pair")
            op, src = entry
            if op not in DARTS_OPS:
                raise ArchitectureError(
                    f"darts: unknown op {op!r} in {cell} node {node}; expected one of {list(DARTS_OPS)}"
                )
            if not 0 <= src < node:
                raise ArchitectureError(
                    f"darts: input {src} of {cell} node {node} is beyond its predecessors 0..{node - 1}"
                )
            pair.append((src, op))
        if pair[0][0] == pair[1][0]:
            raise ArchitectureError(
                f"darts: {cell} node {node} uses input {pair[0][0]} twice; a node takes two distinct inputs"
            )
        (a, op_a), (b, op_b) = sorted(pair)
        out += [PAIRS[node].index((a, b)), DARTS_OPS.index(op_a), DARTS_OPS.index(op_b)]
    return out


@lru_cache(maxsize=1 << 16)
def _genes(arch: Arch) -> tuple[Genes, Genes]:
    cells = []
    for t in range(len(CELL_TYPES)):
        nodes = []
        for n, node in enumerate(INNER_NODES):
            p, oa, ob = arch[t * PER_CELL + n * PER_NODE : t * PER_CELL + (n + 1) * PER_NODE]
            a, b = PAIRS[node][p]
            nodes.append((a, b, DARTS_OPS[oa], DARTS_OPS[ob]))
        cells.append(tuple(nodes))
    return cells[0], cells[1]


@register_space("darts")
class Darts(SearchSpace):
    """24 decisions: per cell type and inner node, a parent pair and an op per parent."""

    def __init__(self, **options: Any) -> None:
        self.opts: DartsOptions = from_dict(DartsOptions, options, where="space.options (darts)")
        decisions = []
        for cell in CELL_TYPES:
            for node in INNER_NODES:
                decisions.append(Decision(f"{cell}.node{node}.inputs", tuple(f"{a}+{b}" for a, b in PAIRS[node])))
                decisions.append(Decision(f"{cell}.node{node}.op_a", DARTS_OPS))
                decisions.append(Decision(f"{cell}.node{node}.op_b", DARTS_OPS))
        super().__init__(decisions)

    def options(self) -> dict[str, Any]:
        return to_dict(self.opts)

    # -- decision layout ---------------------------------------------------------------
    @staticmethod
    def inputs_decision(cell_type: int, node_position: int) -> int:
        """Index of the parent-pair decision of inner node ``node_position`` (0..3) of a cell type (0 normal, 1 reduce)."""
        return cell_type * PER_CELL + node_position * PER_NODE

    @staticmethod
    def op_decision(cell_type: int, node_position: int, slot: int) -> int:
        """Index of the op decision of a node's lower (slot 0) or higher (slot 1) input."""
        return cell_type * PER_CELL + node_position * PER_NODE + 1 + slot

    def genes(self, arch: Iterable[int] | str) -> tuple[Genes, Genes]:
        """(normal, reduce): per inner node (a, b, op_a, op_b) with a < b."""
        return _genes(self.parse(arch))

    def decision_adjacency(self) -> np.ndarray:
        """A node's inputs decision feeds its two op decisions; a node's op decisions feed
        the inputs decision of every later node of the same cell type (it is one of their
        candidate parents); the last normal decision feeds the first reduce decision."""
        adj = np.zeros((self.num_decisions, self.num_decisions), dtype=np.float32)
        for t in range(len(CELL_TYPES)):
            for n in range(len(INNER_NODES)):
                src = self.inputs_decision(t, n)
                for slot in (0, 1):
                    op = self.op_decision(t, n, slot)
                    adj[src, op] = 1.0
                    for later in range(n + 1, len(INNER_NODES)):
                        adj[op, self.inputs_decision(t, later)] = 1.0
        adj[PER_CELL - 1, PER_CELL] = 1.0
        return adj

    # -- strings -----------------------------------------------------------------------
    def to_string(self, arch: Iterable[int]) -> str:
        parts = []
        for cell, genes in zip(CELL_TYPES, self.genes(self.validate(arch))):
            entries = [entry for a, b, op_a, op_b in genes for entry in ((op_a, a), (op_b, b))]
            parts.append(f"{cell}={entries!r}, {cell}_concat={list(CONCAT)!r}")
        return "Genotype(" + ", ".join(parts) + ")"

    def from_string(self, text: str) -> Arch:
        """Parse DARTS's genotype form (or a name in :data:`GENOTYPES`)."""
        fields = parse_genotype(text)
        arch: list[int] = []
        for cell in CELL_TYPES:
            concat = fields[f"{cell}_concat"]
            if not isinstance(concat, (list, tuple)) or list(concat) != list(CONCAT):
                raise ArchitectureError(
                    f"darts: {cell}_concat is {concat!r}, expected {list(CONCAT)} (all inner nodes)"
                )
            arch += _parse_cell(fields[cell], cell, text)
        return self.validate(arch)

    # -- networks and cost -------------------------------------------------------------
    def cost(
        self, arch: Iterable[int] | str, input_shape: Sequence[int] = (3, 32, 32), num_classes: int = 10
    ) -> Cost:
        """FLOPs/params (millions) of the stand-alone search-skeleton network, analytically."""
        arch = self.parse(arch)
        c, h, w = check_input_shape(input_shape, REDUCTIONS, "darts cost")
        num_classes = check_num_classes(num_classes, "darts cost")
        o = self.opts
        return _darts_cost(o.C, o.layers, o.stem_multiplier, arch, c, h, w, num_classes)

    def build_supernet(self, in_channels: int = 3, num_classes: int = 10) -> DartsSuperNet:
        """:class:`~wpnas.spaces.darts_supernet.DartsSuperNet`: one shared module per (cell, edge, op)."""
        in_channels, num_classes = check_build_args(in_channels, num_classes, "darts build_supernet")
        return DartsSuperNet(self, in_channels, num_classes)

    def build_network(self, arch: Iterable[int] | str, in_channels: int = 3, num_classes: int = 10) -> DartsNetwork:
        """The stand-alone network of ``arch`` on the search skeleton (C, layers from the options)."""
        genes = self.genes(arch)
        in_channels, num_classes = check_build_args(in_channels, num_classes, "darts build_network")
        o = self.opts
        return DartsNetwork(in_channels, o.C, o.layers, o.stem_multiplier, genes, num_classes)

    def check_evaluation_options(self, options: Mapping[str, Any] | None) -> dict[str, Any]:
        """``{}``: the search skeleton. Otherwise some of ``C`` (default 36), ``layers`` (20),
        ``auxiliary`` (False); missing keys take DARTS's evaluation values."""
        if not options:
            return {}
        if not isinstance(options, Mapping):
            raise ConfigError(f"evaluation.network (darts): expected a mapping of options, got {options!r}")
        return to_dict(from_dict(DartsEvaluationOptions, dict(options), where="evaluation.network (darts)"))

    def build_evaluation_network(
        self, arch: Iterable[int] | str, in_channels: int = 3, num_classes: int = 10,
        options: Mapping[str, Any] | None = None,
    ) -> DartsNetwork:
        opts = self.check_evaluation_options(options)
        if not opts:
            return self.build_network(arch, in_channels, num_classes)
        genes = self.genes(arch)
        in_channels, num_classes = check_build_args(in_channels, num_classes, "darts build_evaluation_network")
        return DartsNetwork(
            in_channels, opts["C"], opts["layers"], self.opts.stem_multiplier, genes, num_classes, opts["auxiliary"],
            opts["layout"]
        )


# -- analytic cost ----------------------------------------------------------------------
def _conv(c_in: int, c_out: int, k: int, hw: int, groups: int = 1) -> tuple[int, int]:
    """(MACs, params) of a bias-free k x k conv producing ``hw`` output positions."""
    params = k * k * (c_in // groups) * c_out
    return params * hw, params


def _factorized_reduce(c_in: int, c_out: int, hw_out: int) -> tuple[int, int]:
    f, p = _conv(c_in, c_out // 2, 1, hw_out)
    return 2 * f, 2 * p + 2 * c_out


@lru_cache(maxsize=4096)
def _op_cost(name: str, c: int, stride: int, hw_out: int) -> tuple[int, int]:
    if name in ("none", "max_pool_3x3", "avg_pool_3x3"):
        return 0, 0
    if name == "skip_connect":
        return (0, 0) if stride == 1 else _factorized_reduce(c, c, hw_out)
    k = int(name[-1])
    fd, pd = _conv(c, c, k, hw_out, groups=c)
    fp, pp = _conv(c, c, 1, hw_out)
    flops, params = fd + fp, pd + pp + 2 * c
    return (2 * flops, 2 * params) if name.startswith("sep_conv") else (flops, params)


@lru_cache(maxsize=1 << 14)
def _cell_cost(genes: Genes, spec: CellSpec, h: int, w: int) -> tuple[int, int]:
    """(FLOPs, params) of one cell whose c_{k-1} input is h x w."""
    if spec.reduction_prev:
        flops, params = _factorized_reduce(spec.c_pp, spec.c, h * w)
    else:
        flops, params = _conv(spec.c_pp, spec.c, 1, h * w)
        params += 2 * spec.c
    f, p = _conv(spec.c_p, spec.c, 1, h * w)
    flops, params = flops + f, params + p + 2 * spec.c
    hw_out = (h // 2) * (w // 2) if spec.reduction else h * w  # every inner node of a reduction cell is halved
    for a, b, op_a, op_b in genes:
        for name, src in ((op_a, a), (op_b, b)):
            stride = 2 if spec.reduction and src < 2 else 1
            f, p = _op_cost(name, spec.c, stride, hw_out)
            flops, params = flops + f, params + p
    return flops, params


@lru_cache(maxsize=1 << 17)
def _darts_cost(
    C: int, layers: int, stem_multiplier: int, arch: Arch, c: int, h: int, w: int, num_classes: int
) -> Cost:
    genes = _genes(arch)
    c_stem = stem_multiplier * C
    flops, params = _conv(c, c_stem, 3, h * w)
    params += 2 * c_stem
    plan = darts_plan(C, layers, stem_multiplier)
    for spec in plan:
        f, p = _cell_cost(genes[int(spec.reduction)], spec, h, w)
        flops, params = flops + f, params + p
        if spec.reduction:
            h, w = h // 2, w // 2
    c_last = plan[-1].c_out
    flops += c_last * num_classes + num_classes
    params += c_last * num_classes + num_classes
    return Cost(flops_m=flops / 1e6, params_m=params / 1e6)
