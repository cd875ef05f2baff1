"""Measured latency as a cost (beyond the paper): a per-unit lookup table for one space and device.

An architecture's network is cut into *units*: the modules that sit at one position of the
network and change with the architecture (a NATS cell's edge op, a DARTS cell's op or
preprocessing, a MobileNet block), and the fixed parts around them (stem, residual
reductions, head). The cut is read from the built network itself (:func:`unit_modules`): a
module that holds a ``ModuleList``/``ModuleDict`` (a network, a cell) is opened, the
elements of those lists are cut again, and every other module is one unit. So every space
is cut the same way, without a per-space description.

A unit's table key is its position (qualified name), its configuration (the module's
``repr``: op type, channels, kernel, stride) and the shapes of its inputs. Tracing an
architecture on the ``meta`` device gives its keys without any arithmetic
(:func:`trace_units`). The table (:func:`build_table`) times every key of a *cover*: for each
pair of decisions at most ``cover_window`` apart, every pair of their choices (the window is
found by changing one decision at a time and noting which units change), so a unit whose
configuration depends on two nearby decisions (an SSS layer's input and output widths, a
DARTS reduction op's parent pair and op) is seen with every combination. Each key is timed
in place: the real network is run once to capture the unit's actual inputs, then the unit
alone is called ``warmup`` times and timed ``repeats`` times (CUDA: synchronised around
each call), and the median (or the minimum, ``statistic``) is kept, with the unit's MFLOPs.

A unit timed alone is not timed as it runs inside the network (its weights and inputs stay in
cache between repeated calls), and the part of the network that is no unit (additions,
concatenations, the Python between modules) is not timed at all. So the table is calibrated:
``calibration_archs`` random architectures are timed whole, and :func:`fit_calibration` fits
``measured = glue + unit_scale * units' ms + ms_per_mflop * units' MFLOPs`` to them. An
architecture's table latency is that model applied to its units' sums.

What was measured is recorded as a fingerprint (:func:`expected_fingerprint`): the device
(type and model name), threads, batch size, torch version, input shape, class count, the
space with its options and the evaluation network's options. A search refuses a table
whose fingerprint differs (:meth:`LatencyTable.check`).

The network timed is the one deployed: ``space.build_evaluation_network(arch, options)``
(with ``evaluation.network``: DARTS's 20 cells of 36 channels; MobileNet's layout), in eval
mode, with no gradients. A key missing from the table is an error, never a guess.
"""

from __future__ import annotations

import json
import logging
import math
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from wpnas.errors import ConfigError, DataError
from wpnas.fingerprint import check_fingerprint, fingerprint, record
from wpnas.nn.flops import count_call_flops
from wpnas.seeds import stream_seed
from wpnas.spaces.base import Arch, SearchSpace

logger = logging.getLogger(__name__)

#: The costs the reward can price an architecture by (``search.wpnas.reward.cost``).
COSTS = ("flops", "latency")

#: What a meter keeps of its timed calls.
STATISTICS = ("median", "min")

#: Format version of the saved table.
TABLE_FORMAT = 2

Timer = Callable[[], float]
Builder = Callable[[Arch, torch.device], nn.Module]


@dataclass(frozen=True)
class LatencyConfig:
    """``latency:`` in the parameters: where and how the table is measured, and where the search finds it.

    ``device``: ``cpu``, ``cuda`` or ``cuda:N`` (the deployment device, not the search's).
    ``threads``: torch CPU threads while timing. ``batch_size``: images per call.
    ``warmup`` / ``repeats``: untimed and timed calls per unit; ``statistic``: what is kept of the
    timed calls (``median``; ``min`` is steadier on a machine other jobs load).
    ``cover_window``: decisions at most this far apart are covered pairwise (null: found by
    :func:`dependency_window`).
    ``calibration_archs``: random architectures timed whole to calibrate the table (:func:`fit_calibration`).
    ``rounds``: every timing (a unit's, a whole network's) is the ``statistic`` of this many passes,
    interleaved over all units or all architectures timed together (:func:`time_interleaved`), so that
    a machine whose speed drifts over minutes moves them alike.
    ``table_path``: the catalog's folder of table versions (``<path>/<version>/<file>``);
    ``table_version``: the version the search reads (null: the newest).
    """

    device: str = "cpu"
    threads: int = 1
    batch_size: int = 1
    warmup: int = 3
    repeats: int = 15
    statistic: str = "median"
    cover_window: int | None = None
    calibration_archs: int = 24
    rounds: int = 1
    table_path: str = "data/06_models/latency_table.json"
    table_version: str | None = None

    def __post_init__(self) -> None:
        if not (self.device == "cpu" or self.device == "cuda" or self.device.startswith("cuda:")):
            raise ConfigError(f"latency.device: {self.device!r}; expected cpu, cuda or cuda:N")
        for name, low in (("threads", 1), ("batch_size", 1), ("warmup", 0), ("repeats", 1),
                          ("calibration_archs", 1), ("rounds", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"latency.{name}: {value!r} must be an integer >= {low}")
        if self.statistic not in STATISTICS:
            raise ConfigError(f"latency.statistic: {self.statistic!r} is not one of {list(STATISTICS)}")
        if self.cover_window is not None and (isinstance(self.cover_window, bool)
                                              or not isinstance(self.cover_window, int) or self.cover_window < 0):
            raise ConfigError(f"latency.cover_window: {self.cover_window!r} must be an integer >= 0 or null (found)")


def check_cost_name(name: str, where: str = "reward.cost") -> str:
    """``name`` if it is a known cost, else a ``ConfigError`` listing them."""
    if name not in COSTS:
        raise ConfigError(f"{where}: {name!r} is not one of {list(COSTS)}")
    return name


def check_bound(value: float | None, where: str) -> None:
    """A latency bound is null or a finite number > 0 (milliseconds)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{where}: {value!r} must be a number of milliseconds > 0 or null")


# -- the device ---------------------------------------------------------------------------------------
def device_name(device: torch.device) -> str:
    """The model of the device timed (CPU model from /proc/cpuinfo where readable; the CUDA device's name)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def resolve_latency_device(name: str) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"latency.device: {name!r} but CUDA is not available here; use cpu or run on the GPU machine")
    return device


def expected_fingerprint(cfg: LatencyConfig, space: SearchSpace, input_shape: Sequence[int], num_classes: int,
                         network: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The fingerprint record of a table measured with ``cfg`` here, for ``space`` and this input."""
    device = resolve_latency_device(cfg.device)
    return record({
        "device": device.type, "device_name": device_name(device), "threads": cfg.threads,
        "batch_size": cfg.batch_size, "torch": torch.__version__, "input_shape": [int(s) for s in input_shape],
        "num_classes": int(num_classes), "space": space.name, "options": space.options(),
        "network": dict(space.check_evaluation_options(network)),
    })


# -- the cut into units -------------------------------------------------------------------------------
def unit_modules(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """The network's units as (qualified name, module): a module holding a ``ModuleList`` or
    ``ModuleDict`` is opened (its plain children are units, its lists' elements are cut again);
    any other module is one unit."""
    out: list[tuple[str, nn.Module]] = []

    def cut(prefix: str, module: nn.Module) -> None:
        if isinstance(module, (nn.ModuleList, nn.ModuleDict)):  # a list of lists: cut each element
            for key, element in module.named_children():
                cut(f"{prefix}.{key}", element)
            return
        children = list(module.named_children())
        if not any(isinstance(c, (nn.ModuleList, nn.ModuleDict)) for _, c in children):
            out.append((prefix, module))
            return
        for name, child in children:
            path = f"{prefix}.{name}" if prefix else name
            if isinstance(child, (nn.ModuleList, nn.ModuleDict)):
                cut(path, child)
            else:
                out.append((path, child))

    cut("", net)
    return out


def _spec(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return ["T", list(value.shape), str(value.dtype)]
    if isinstance(value, (list, tuple)):
        return [_spec(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _spec(v) for k, v in value.items()}
    return value if isinstance(value, (int, float, str, bool, type(None))) else repr(value)


def unit_key(name: str, module: nn.Module, args: tuple, kwargs: dict) -> str:
    """A unit's key: position, configuration and input shapes, hashed (16 hex digits)."""
    return fingerprint([name, repr(module), _spec(args), _spec(kwargs)])


@dataclass(frozen=True)
class Unit:
    key: str
    name: str
    label: str


class _Recorder:
    """Forward pre-hooks on the units: the keys (and, when ``keep``, the inputs) in call order."""

    def __init__(self, net: nn.Module, keep: bool = False) -> None:
        self.calls: list[tuple[Unit, nn.Module, tuple, dict]] = []
        self.handles = []
        for name, module in unit_modules(net):
            self.handles.append(module.register_forward_pre_hook(self._hook(name), with_kwargs=True))
        self.keep = keep

    def _hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            shapes = [list(a.shape) for a in args if isinstance(a, torch.Tensor)]
            unit = Unit(unit_key(name, module, args, kwargs), name, f"{name} {type(module).__name__} {shapes}")
            if self.keep:
                args = tuple(a.detach().clone() if isinstance(a, torch.Tensor) else a for a in args)
                self.calls.append((unit, module, args, dict(kwargs)))
            else:
                self.calls.append((unit, module, (), {}))
        return hook

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def evaluation_builder(space: SearchSpace, in_channels: int, num_classes: int,
                       network: Mapping[str, Any] | None = None) -> Builder:
    """``build(arch, device)``: the space's evaluation network (the one deployed), in eval mode."""
    options = space.check_evaluation_options(network)

    def build(arch: Arch, device: torch.device) -> nn.Module:
        with torch.device(device):
            net = space.build_evaluation_network(arch, in_channels, num_classes, options or None)
        return net.eval()

    return build


#: What a unit returned on the meta device, by unit key (:func:`trace_units`' ``shapes``).
ShapeMemo = dict[str, Any]


def trace_units(build: Builder, arch: Arch, input_shape: Sequence[int], batch_size: int = 1,
                shapes: ShapeMemo | None = None) -> list[Unit]:
    """The units ``arch``'s network runs, in call order, from one forward on the meta device.

    ``shapes`` (shared between calls) remembers what each unit key returned: a unit whose key was
    seen before is not run again, its output is an empty meta tensor of the remembered shape. The key
    holds the unit's configuration and input shapes, which fix its output's shape, and units never
    nest, so the keys come out the same; tracing the many architectures of a table's cover then runs
    each distinct unit once (the meta kernels are slow: a DARTS evaluation network took 0.13 s)."""
    net = build(arch, torch.device("meta"))
    recorder = _Recorder(net)
    if shapes is not None:
        for _, module in unit_modules(net):
            module.forward = _remembered(module.forward, recorder, shapes)
    try:
        with torch.no_grad():
            net(torch.empty((batch_size, *input_shape), device="meta"))
    finally:
        recorder.close()
    return [unit for unit, _, _, _ in recorder.calls]


def _remembered(forward: Callable[..., Any], recorder: _Recorder, shapes: ShapeMemo) -> Callable[..., Any]:
    """``forward`` that returns the remembered output of the unit key its pre-hook just recorded."""
    def call(*args: Any, **kwargs: Any) -> Any:
        key = recorder.calls[-1][0].key
        if key in shapes:
            return _empty_like_spec(shapes[key])
        out = forward(*args, **kwargs)
        spec = _output_spec(out)
        if spec is not None:
            shapes[key] = spec
        return out
    return call


def _output_spec(out: Any) -> Any:
    """A unit's output as shapes and dtypes (None: not only tensors, so not remembered)."""
    if isinstance(out, torch.Tensor):
        return ("T", tuple(out.shape), out.dtype)
    if isinstance(out, (tuple, list)):
        specs = [_output_spec(o) for o in out]
        return None if any(s is None for s in specs) else (type(out).__name__, tuple(specs))
    return None


def _empty_like_spec(spec: Any) -> Any:
    kind, body = spec[0], spec[1:]
    if kind == "T":
        return torch.empty(body[0], dtype=body[1], device="meta")
    items = [_empty_like_spec(s) for s in body[0]]
    return tuple(items) if kind == "tuple" else items


# -- timing -------------------------------------------------------------------------------------------
def keep(values: Iterable[float], statistic: str) -> float:
    """What is kept of repeated timings: their ``min`` or their ``median``."""
    values = list(values)
    return float(min(values) if statistic == "min" else statistics.median(values))


class Meter:
    """Times callables: ``warmup`` untimed calls, then the median of ``repeats`` timed ones, in
    milliseconds. ``timer`` (seconds) is injectable (tests pass a fake clock); on CUDA the device is
    synchronised before and after each timed call."""

    def __init__(self, device: torch.device, warmup: int = 3, repeats: int = 15,
                 timer: Timer = time.perf_counter, statistic: str = "median") -> None:
        self.statistic = statistic
        self.device = device
        self.warmup = warmup
        self.repeats = repeats
        self.timer = timer

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def __call__(self, fn: Callable[[], Any]) -> float:
        with torch.no_grad():
            for _ in range(self.warmup):
                fn()
            times = []
            for _ in range(self.repeats):
                self._sync()
                start = self.timer()
                fn()
                self._sync()
                times.append((self.timer() - start) * 1000.0)
        return keep(times, self.statistic)


class threads:
    """``with threads(n):`` torch's intra-op CPU threads set to ``n``, restored on exit."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __enter__(self) -> None:
        self.before = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc: Any) -> None:
        torch.set_num_threads(self.before)


def measure_network(net: nn.Module, input_shape: Sequence[int], meter: Meter, batch_size: int = 1,
                    seed: int = 0) -> float:
    """Median milliseconds of one forward of the whole network (eval mode, no gradients)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn((batch_size, *input_shape), generator=generator).to(meter.device)
    net.eval()
    return meter(lambda: net(x))


def time_interleaved(archs: Sequence[Arch], time_one: Callable[[Arch], float], rounds: int,
                     statistic: str) -> list[float]:
    """``time_one(arch)`` for every architecture in ``rounds`` passes over all of them, and per
    architecture the ``statistic`` (``min`` or ``median``) of its passes."""
    passes = [[time_one(arch) for arch in archs] for _ in range(rounds)]
    return [keep(column, statistic) for column in zip(*passes)]


def measure_units(net: nn.Module, input_shape: Sequence[int], meter: Meter, batch_size: int,
                  wanted: Callable[[str], bool]) -> dict[str, dict[str, Any]]:
    """``key -> {"ms", "mflops", "unit"}`` for the units of ``net`` that ``wanted(key)``: each timed
    alone on the inputs it gets inside the network, and its convolutions' and linear layers' MFLOPs
    per image counted on the same inputs."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn((batch_size, *input_shape), generator=generator).to(meter.device)
    recorder = _Recorder(net, keep=True)
    try:
        with torch.no_grad():
            net(x)
    finally:
        recorder.close()
    out: dict[str, dict[str, Any]] = {}
    for unit, module, args, kwargs in recorder.calls:
        if unit.key in out or not wanted(unit.key):
            continue
        call = lambda m=module, a=args, k=kwargs: m(*a, **k)  # noqa: E731
        out[unit.key] = {"ms": meter(call), "mflops": count_call_flops(module, call) / 1e6, "unit": unit.label}
    return out


def dependency_window(space: SearchSpace, build: Builder, input_shape: Sequence[int], seed: int = 0,
                      bases: int = 3, shapes: ShapeMemo | None = None) -> int:
    """How far apart the decisions that shape one unit lie: from ``bases`` random architectures, each
    decision is changed to two other choices (where it has them) and the positions whose key changed are
    noted; the window is the largest span of decisions that changed one position's key."""
    rng = np.random.default_rng(stream_seed(seed, "latency.window"))
    depends: dict[str, set[int]] = {}
    for _ in range(bases):
        base = space.sample(rng)
        reference = {u.name: u.key for u in trace_units(build, base, input_shape, shapes=shapes)}
        for d, count in enumerate(space.num_choices):
            others = [c for c in range(count) if c != base[d]]
            for c in (rng.permutation(others)[:2] if others else []):
                arch = list(base)
                arch[d] = int(c)
                try:
                    arch = space.validate(arch)
                except Exception:  # noqa: BLE001 - a space may refuse a one-decision change
                    continue
                units = {u.name: u.key for u in trace_units(build, arch, input_shape, shapes=shapes)}
                for name in reference.keys() | units.keys():
                    if reference.get(name) != units.get(name):
                        depends.setdefault(name, set()).add(d)
    return max((max(s) - min(s) for s in depends.values()), default=0)


def cover(space: SearchSpace, window: int) -> list[Arch]:
    """Architectures in which every two decisions at most ``window`` apart take every pair of their
    choices: decision ``d`` reads digit ``d mod (window + 1)`` of a mixed-radix counter (each digit's
    radix the most choices among its decisions), so decisions that close always read different
    digits, and every combination of digits comes once."""
    group = window + 1
    counts = space.num_choices
    radix = [max(counts[d] for d in range(r, len(counts), group)) if r < len(counts) else 1 for r in range(group)]
    archs: dict[Arch, None] = {}
    for t in range(int(np.prod(radix))):
        digits, rest = [], t
        for base in radix:
            rest, digit = divmod(rest, base)
            digits.append(digit)
        arch = [digits[d % group] % counts[d] for d in range(len(counts))]
        try:
            archs.setdefault(space.validate(arch), None)
        except Exception as err:  # noqa: BLE001 - a space that refuses a combination cannot be covered this way
            raise ConfigError(f"latency table: {space.name} refuses the cover architecture {arch}: {err}") from None
    return list(archs)


# -- the calibration ----------------------------------------------------------------------------------
def fit_calibration(rows: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """How the units' isolated timings become a whole network's time, from whole networks measured here.

    Each row is a calibration architecture: its ``measured_ms`` (the whole network), the sum of its
    units' isolated timings ``units_ms`` and of their MFLOPs ``units_mflops``. The model is
    ``measured = glue + unit_scale * units_ms + ms_per_mflop * units_mflops``, all three >= 0, fitted by
    least squares on the *relative* residual (every architecture counts alike, fast or slow). The scale
    takes what timing a unit alone gets wrong in proportion (a cache kept warm by repeated calls); the
    FLOPs term what it gets wrong in proportion to its arithmetic; the glue what runs outside the
    units (additions, concatenations, the Python between modules). A term the rows cannot tell apart
    from the others (fewer rows than terms, or collinear columns) is left out: the FLOPs term first,
    then the scale (kept at 1), so one row gives the plain glue ``max(0, measured - units_ms)``."""
    from scipy.optimize import lsq_linear

    measured = np.asarray([r["measured_ms"] for r in rows], dtype=float)
    columns = {"glue_ms": np.ones_like(measured),
               "unit_scale": np.asarray([r["units_ms"] for r in rows], dtype=float),
               "ms_per_mflop": np.asarray([r["units_mflops"] for r in rows], dtype=float)}
    fit = {"glue_ms": 0.0, "unit_scale": 1.0, "ms_per_mflop": 0.0}
    for names in (["glue_ms", "unit_scale", "ms_per_mflop"], ["glue_ms", "unit_scale"], ["glue_ms"]):
        a = np.stack([columns[n] for n in names], axis=1) / measured[:, None]
        if np.linalg.matrix_rank(a) < len(names):
            continue
        target = measured if "unit_scale" in names else measured - columns["unit_scale"]
        solved = lsq_linear(a, target / measured, bounds=(0.0, np.inf), method="bvls").x
        fit.update({n: float(v) for n, v in zip(names, solved)})
        break
    residual = np.abs(predict_calibrated(fit, columns["unit_scale"], columns["ms_per_mflop"]) - measured) / measured
    fit["calibration_median_abs_rel_error"] = float(np.median(residual))
    return fit


def predict_calibrated(fit: Mapping[str, float], units_ms: Any, units_mflops: Any) -> Any:
    """The calibrated latency (ms) of units whose isolated timings and MFLOPs sum to these."""
    return fit["glue_ms"] + fit["unit_scale"] * units_ms + fit["ms_per_mflop"] * units_mflops


def _price(fit: Mapping[str, float], entry: Mapping[str, Any]) -> float:
    """One unit's share of the calibrated latency (ms)."""
    return predict_calibrated({**fit, "glue_ms": 0.0}, float(entry["ms"]), float(entry["mflops"]))


# -- the table ----------------------------------------------------------------------------------------
class LatencyTable:
    """Per-unit latencies (ms) of one space on one device, and the glue; ``latency(arch)`` sums them."""

    def __init__(self, data: Mapping[str, Any], space: SearchSpace, build: Builder | None = None) -> None:
        if "entries" not in data or "fingerprint" not in data:
            raise DataError("latency table: not a wpnas latency table (format, entries, fingerprint expected)")
        if data.get("format") != TABLE_FORMAT:
            raise DataError(f"latency table: format {data.get('format')!r}, this version of wpnas reads format "
                            f"{TABLE_FORMAT} (a calibrated table): rebuild it with kedro run --pipelines=latency")
        if data["fingerprint"]["fields"].get("space") != space.name:
            raise DataError(
                f"latency table was measured for space {data['fingerprint']['fields'].get('space')!r}, not "
                f"{space.name!r}: build one with kedro run --pipelines=latency --params space.name={space.name}"
            )
        self.data = dict(data)
        self.space = space
        self.fit = {n: float(data[n]) for n in ("glue_ms", "unit_scale", "ms_per_mflop")}
        self.entries: dict[str, float] = {k: _price(self.fit, v) for k, v in data["entries"].items()}
        fields = data["fingerprint"]["fields"]
        self.input_shape = tuple(fields["input_shape"])
        self.batch_size = int(fields["batch_size"])
        self._build = build or evaluation_builder(space, self.input_shape[0], int(fields["num_classes"]),
                                                  fields.get("network") or None)
        self._cache: dict[Arch, float] = {}
        self._shapes: ShapeMemo = {}

    @property
    def fingerprint(self) -> dict[str, Any]:
        return self.data["fingerprint"]

    def check(self, expected: Mapping[str, Any]) -> None:
        """Refuse a table measured elsewhere (another device, threads, batch, input, space, torch)."""
        check_fingerprint(expected, self.fingerprint, "latency table", DataError,
                          hint="Build a table for this setting: kedro run --pipelines=latency")

    def units(self, arch: Arch) -> list[Unit]:
        return trace_units(self._build, arch, self.input_shape, self.batch_size, self._shapes)

    def latency(self, arch: Iterable[int]) -> float:
        """Table latency (ms) of ``arch``: the glue plus its units' calibrated prices."""
        arch = self.space.validate(arch)
        if arch not in self._cache:
            total = self.fit["glue_ms"]
            for unit in self.units(arch):
                if unit.key not in self.entries:
                    raise DataError(
                        f"latency table has no entry for unit {unit.label} of {self.space.to_string(arch)}; "
                        "rebuild it with a larger latency.cover_window"
                    )
                total += self.entries[unit.key]
            self._cache[arch] = total
        return self._cache[arch]

    def __call__(self, arch: Iterable[int]) -> float:
        return self.latency(arch)

    def lower_bound(self) -> float:
        """No architecture of the space is faster than this (ms): the glue plus, per position that every
        cover architecture runs, its cheapest entry (positions some architecture skips count 0)."""
        return float(self.data["lower_bound_ms"])

    def check_bound(self, bound: float | None, where: str) -> None:
        """A bound below the fastest architecture is refused (before any training)."""
        if bound is None:
            return
        check_bound(bound, where)
        if bound < self.lower_bound():
            raise ConfigError(
                f"{where}: {bound} ms is below the fastest architecture of {self.space.name} on "
                f"{self.fingerprint['fields']['device_name']} (at least {self.lower_bound():.4g} ms by the latency "
                f"table); expected a bound >= {self.lower_bound():.4g}"
            )


def build_table(space: SearchSpace, cfg: LatencyConfig, input_shape: Sequence[int], num_classes: int,
                network: Mapping[str, Any] | None = None, seed: int = 0, build: Builder | None = None,
                timer: Timer = time.perf_counter, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure the table of ``space`` on ``cfg.device`` (see the module doc); a JSON-ready dict."""
    device = resolve_latency_device(cfg.device)
    input_shape = tuple(int(s) for s in input_shape)
    build = build or evaluation_builder(space, input_shape[0], num_classes, network)
    meter = Meter(device, cfg.warmup, cfg.repeats, timer, cfg.statistic)
    started = time.perf_counter()
    shapes: ShapeMemo = {}  # one memo for every trace below (keys hold the batch size too)
    window = cfg.cover_window if cfg.cover_window is not None else dependency_window(space, build, input_shape,
                                                                                     seed, shapes=shapes)
    archs = cover(space, window)
    traced = {arch: trace_units(build, arch, input_shape, cfg.batch_size, shapes) for arch in archs}
    keys = {u.key for units in traced.values() for u in units}
    entries: dict[str, dict[str, Any]] = {}
    rng = np.random.default_rng(stream_seed(seed, "latency.calibration"))
    calibrate = space.sample_unique(rng, min(cfg.calibration_archs, space.size))
    with threads(cfg.threads):
        for _ in range(cfg.rounds):  # every unit once per pass; the statistic of its passes is kept
            timed: set[str] = set()
            for arch in archs:
                need = {u.key for u in traced[arch]} - timed
                if need:
                    torch.manual_seed(0)
                    for key, entry in measure_units(build(arch, device), input_shape, meter, cfg.batch_size,
                                                    need.__contains__).items():
                        entries.setdefault(key, {**entry, "passes": []})["passes"].append(entry["ms"])
                    timed |= need
        for entry in entries.values():
            passes = entry.pop("passes")
            entry["ms"] = keep(passes, cfg.statistic)
        missing = keys - entries.keys()
        if missing:
            raise DataError(f"latency table: {len(missing)} units were traced but never ran on {device}")
        calibration_units = {arch: trace_units(build, arch, input_shape, cfg.batch_size, shapes) for arch in calibrate}
        for arch, units in calibration_units.items():
            need = {u.key for u in units} - entries.keys()
            if need:  # a unit the cover did not reach (a space whose window was underestimated)
                torch.manual_seed(0)
                entries.update(measure_units(build(arch, device), input_shape, meter, cfg.batch_size, need.__contains__))

        def whole(arch: Arch) -> float:
            torch.manual_seed(0)
            return measure_network(build(arch, device), input_shape, meter, cfg.batch_size)

        measured = time_interleaved(calibrate, whole, cfg.rounds, cfg.statistic)
        calibration = [{"arch": space.to_string(arch), "measured_ms": ms,
                        "units_ms": sum(entries[u.key]["ms"] for u in calibration_units[arch]),
                        "units_mflops": sum(entries[u.key]["mflops"] for u in calibration_units[arch])}
                       for arch, ms in zip(calibrate, measured)]
    fit = fit_calibration(calibration)
    # positions every cover architecture runs: their cheapest priced entry bounds any architecture from below
    always = set.intersection(*({u.name for u in units} for units in traced.values()))
    cheapest: dict[str, float] = {}
    for units in traced.values():
        for u in units:
            if u.name in always:
                cheapest[u.name] = min(cheapest.get(u.name, math.inf), _price(fit, entries[u.key]))
    seconds = time.perf_counter() - started
    data = {
        "format": TABLE_FORMAT,
        "fingerprint": expected_fingerprint(cfg, space, input_shape, num_classes, network),
        "entries": entries,
        **fit,
        "lower_bound_ms": fit["glue_ms"] + sum(cheapest.values()),
        "calibration": calibration,
        "cover_archs": len(archs),
        "settings": {"warmup": cfg.warmup, "repeats": cfg.repeats, "statistic": cfg.statistic, "cover_window": window,
                     "calibration_archs": cfg.calibration_archs, "rounds": cfg.rounds, "seed": seed},
        "seconds": round(seconds, 3),
    }
    if log is not None:
        log(f"latency table for {space.name} on {data['fingerprint']['fields']['device_name']}: {len(entries)} units "
            f"from {len(archs)} cover architectures; calibrated on {len(calibration)} whole networks: glue "
            f"{fit['glue_ms']:.4f} ms, unit scale {fit['unit_scale']:.3f}, {fit['ms_per_mflop']:.4g} ms per MFLOP; "
            f"in {seconds:.1f} s")
    return data


def measure_architectures(space: SearchSpace, archs: Sequence[Iterable[int]], cfg: LatencyConfig,
                          input_shape: Sequence[int], num_classes: int, network: Mapping[str, Any] | None = None,
                          seed: int = 0) -> list[float]:
    """The measured latency (ms) of each architecture's whole evaluation network on ``cfg.device`` (not a
    table sum): ``cfg.rounds`` passes interleaved over ``archs`` (:func:`time_interleaved`)."""
    device = resolve_latency_device(cfg.device)
    build = evaluation_builder(space, int(input_shape[0]), num_classes, network)
    meter = Meter(device, cfg.warmup, cfg.repeats, statistic=cfg.statistic)

    def whole(arch: Arch) -> float:
        torch.manual_seed(seed)
        return measure_network(build(arch, device), input_shape, meter, cfg.batch_size, seed)

    with threads(cfg.threads):
        return time_interleaved([space.validate(a) for a in archs], whole, cfg.rounds, cfg.statistic)


def measure_architecture(space: SearchSpace, arch: Iterable[int], cfg: LatencyConfig, input_shape: Sequence[int],
                         num_classes: int, network: Mapping[str, Any] | None = None, seed: int = 0) -> float:
    """The measured latency (ms) of ``arch``'s whole evaluation network (:func:`measure_architectures`)."""
    return measure_architectures(space, [arch], cfg, input_shape, num_classes, network, seed)[0]


# -- reading and writing ------------------------------------------------------------------------------
def newest_table_file(path: str | Path, version: str | None = None) -> Path:
    """The file of a versioned catalog entry ``<path>/<version>/<name>``: ``version``, or the newest."""
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(f"latency table {str(folder)!r} does not exist: run kedro run --pipelines=latency first")
    versions = sorted(p.name for p in folder.iterdir() if (p / folder.name).is_file())
    if version is not None:
        if version not in versions:
            raise DataError(f"latency table {str(folder)!r} has no version {version!r} (it has {versions[-3:]})")
        return folder / version / folder.name
    if not versions:
        raise DataError(f"latency table {str(folder)!r} holds no saved version: run kedro run --pipelines=latency")
    return folder / versions[-1] / folder.name


def load_table(cfg: LatencyConfig, space: SearchSpace, expected: Mapping[str, Any] | None = None) -> LatencyTable:
    """The table the search uses (``cfg.table_path``, ``cfg.table_version``), checked against ``expected``."""
    path = newest_table_file(cfg.table_path, cfg.table_version)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"latency table {str(path)!r} cannot be read: {err}") from None
    table = LatencyTable(data, space)
    if expected is not None:
        table.check(expected)
    return table
