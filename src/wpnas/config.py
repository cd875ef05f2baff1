"""Typed configuration: dataclasses built once from (Kedro) parameter dicts and validated.

Every stage takes a dataclass, never a loose dict, so a typo in ``parameters.yml`` fails
at the start of a run with the offending key named, not hours later.
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import random
import re
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import numpy as np
import torch

from wpnas.errors import ConfigError

T = TypeVar("T")


def _convert(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"{where}: {value!r} matches none of {hint}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where=where)
    if origin in (tuple, list):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        items = [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if hint is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if not isinstance(value, (int, float, np.floating, np.integer)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def did_you_mean(given: Iterable[Any], known: Iterable[Any]) -> str:
    """``" (did you mean 'epochs'?)"`` for the given names that look like a known one; empty
    when none does. For messages about a mistyped key, pipeline or environment."""
    import difflib

    known = [str(k) for k in known]
    close = []
    for name in given:
        close += [f"{str(name)!r} -> {match!r}" for match in difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)]
    if not close:
        return ""
    return f" (did you mean {close[0].split(' -> ')[1]}?)" if len(close) == 1 else f" (did you mean {', '.join(close)}?)"


def from_dict(cls: type[T], data: Mapping[str, Any] | T | None, where: str | None = None) -> T:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types."""
    where = where or cls.__name__
    if data is None:
        data = {}
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of settings, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    keyed = _keyed_sections(cls)
    known = set(fields) - set(keyed) | {key for sections in keyed.values() for key in sections}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {unknown}{did_you_mean(unknown, known)}; "
                          f"expected some of {sorted(known)}")
    kwargs = {k: _convert(v, hints[k], f"{where}.{k}") for k, v in data.items() if k in fields and k not in keyed}
    for name, sections in keyed.items():  # sections named by key, each parsed by its own class
        kwargs[name] = {key: from_dict(kind, data.get(key), where=f"{where}.{key}") for key, kind in sections.items()}
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ConfigError(f"{where}: {err}") from None
    except ConfigError as err:  # from __post_init__, which may only know the key relative to its class
        qualified = qualify(str(err), where, fields)
        if qualified == str(err):
            raise
        raise ConfigError(qualified) from None


#: ``dataclasses.field(metadata={SECTIONS: provider})``: the field (a dict) collects the sections
#: ``provider()`` names (key -> dataclass) from the mapping's top level, each parsed by its class;
#: :func:`to_dict` writes them back at the top level. ``search.wpnas`` / ``search.evolution`` are
#: such sections: the methods' settings, keyed by the name each method declares.
SECTIONS = "wpnas.sections"


def _keyed_sections(cls: type) -> dict[str, dict[str, type]]:
    return {f.name: dict(f.metadata[SECTIONS]()) for f in dataclasses.fields(cls) if SECTIONS in f.metadata}


def keyed_defaults(provider: typing.Callable[[], Mapping[str, type]]) -> Any:
    """A field holding the sections ``provider()`` names, each at its class's defaults when absent."""
    return dataclasses.field(default_factory=lambda: {key: kind() for key, kind in provider().items()},
                             metadata={SECTIONS: provider})


class Registry:
    """Name -> class, filled by ``@registry.register(name)`` where each class is defined
    (search spaces, search methods); unknown names fail naming the known ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._classes: dict[str, type] = {}

    def register(self, name: str) -> typing.Callable[[Any], Any]:
        def wrap(cls: type) -> type:
            if name in self._classes and self._classes[name] is not cls:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            cls.name = name
            self._classes[name] = cls
            return cls

        return wrap

    def names(self) -> list[str]:
        return sorted(self._classes)

    def classes(self) -> list[type]:
        return [self._classes[name] for name in self.names()]

    def check(self, name: str, key: str | None = None) -> str:
        if name not in self._classes:
            prefix = f"{key}: " if key else ""
            raise ConfigError(f"{prefix}unknown {self.kind} {name!r}{did_you_mean([name], self._classes)}; "
                              f"expected one of {self.names()}")
        return name

    def get(self, name: str, key: str | None = None) -> type:
        return self._classes[self.check(name, key)]

    def __contains__(self, name: object) -> bool:
        return name in self._classes


_KEY_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?:\[\d+\])?(?:\.[A-Za-z_][A-Za-z0-9_]*(?:\[\d+\])?)*)(?=[:\s=])")


def qualify(message: str, where: str, fields: Iterable[str] = ()) -> str:
    """Give the setting a message starts with its full key under ``where``.

    A dataclass's checks name a setting relative to themselves ("b2: ...", "reward.b2: ...",
    "predictor.dropout" for ``predictor.model.dropout``); nested under ``where``
    ("search.wpnas.reward") the message must name the full key ("search.wpnas.reward.b2").
    """
    if not where:
        return message
    match = _KEY_RE.match(message)
    key = match.group(1) if match else ""
    rest = message[len(key):]
    parts, scope = key.split(".") if key else [], where.split(".")
    if key == where or key.startswith(where + ".") or key.startswith(where + "["):
        return message
    for k in range(min(len(scope), len(parts)), 0, -1):  # "reward.b2" under "search.wpnas.reward"
        if scope[-k:] == parts[:k]:
            return ".".join(scope + parts[k:]) + rest
    if parts and parts[0].split("[")[0] in set(fields):  # "b2" under "search.wpnas.reward"
        return f"{where}.{key}{rest}"
    if parts and len(parts) > 1 and parts[0] == scope[0]:  # "predictor.dropout" under "predictor.model"
        return ".".join(scope + parts[1:]) + rest
    return f"{where}: {message}"


def json_ready(value: Any, nonfinite_as_none: bool = False) -> Any:
    """``value`` as JSON gives it back: mappings with string keys, tuples as lists, numpy scalars
    as Python values (and, when asked, NaN and infinities as None), for checkpoints, logs and
    JSON artifacts."""
    if isinstance(value, Mapping):
        return {str(k): json_ready(v, nonfinite_as_none) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v, nonfinite_as_none) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if nonfinite_as_none and isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_dict(obj: Any) -> dict[str, Any]:
    """Plain-dict view of a config dataclass (tuples become lists), for logging and checkpoints;
    keyed sections (:data:`SECTIONS`) stand at the top level, as in the parameters."""
    keyed = _keyed_sections(type(obj)) if dataclasses.is_dataclass(obj) else {}
    view: dict[str, Any] = {}
    for key, value in json_ready(dataclasses.asdict(obj)).items():
        if key in keyed:
            view.update(value)
        else:
            view[key] = value
    return view


def fraction_or_count(size: float | int, total: int) -> int:
    """How many of ``total`` a size means: a fraction in (0, 1) of ``total``, or a count (>= 1)."""
    return int(round(size * total)) if size < 1 else int(size)


_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


#: ``run.distributed.map_workers_per_device: auto`` on CUDA: eight processes sharing an
#: H200 fine-tuned 4.3x the images/s of one (four: 3.8x), measured before any fast path.
MAP_WORKERS_PER_CUDA = 8


@dataclasses.dataclass(frozen=True)
class DistributedConfig:
    """How many worker processes a stage's map runs on (``run.distributed``).

    ``nproc_per_node > 1``: a stage that can fan out (WarmUp, ground truth, search,
    evaluation) starts that many workers on this machine through torch's elastic launcher. Under an external
    ``torchrun`` the launcher's world is used instead and ``nproc_per_node`` is ignored.
    ``backend``: ``auto`` is NCCL when every local rank has its own CUDA device, else Gloo.

    ``map_workers_per_device``: the stages whose work is a map over independent runs (the
    ground-truth fine-tunes, the ablation's, evaluation's repeated runs) start ``nproc_per_node`` times this
    many workers, so that several share each device; data-parallel training (WarmUp, the
    WPNAS search, one evaluation run) keeps ``nproc_per_node``, since more ranks would cut
    its batches finer and change its BN statistics. ``auto``: :data:`MAP_WORKERS_PER_CUDA`
    on CUDA, 1 elsewhere. A map gives the same results on any number of workers.
    """

    nproc_per_node: int = 1
    backend: typing.Literal["auto", "gloo", "nccl"] = "auto"
    timeout_s: float = 1800.0
    map_workers_per_device: int | typing.Literal["auto"] = 1

    def __post_init__(self) -> None:
        if self.nproc_per_node < 1:
            raise ConfigError(f"run.distributed.nproc_per_node: {self.nproc_per_node} must be >= 1")
        per = self.map_workers_per_device
        if per != "auto" and (isinstance(per, bool) or not isinstance(per, int) or per < 1):
            raise ConfigError(
                f"run.distributed.map_workers_per_device: {per!r}; expected an integer >= 1 or 'auto' "
                f"({MAP_WORKERS_PER_CUDA} per CUDA device, 1 elsewhere)"
            )

    def map_world(self, device: torch.device | str, work: int) -> int:
        """Workers a map over ``work`` independent runs starts on ``device``: ``nproc_per_node`` times
        the workers per device, no more than the work (but never fewer than ``nproc_per_node``)."""
        per = self.map_workers_per_device
        if per == "auto":
            per = MAP_WORKERS_PER_CUDA if torch.device(device).type == "cuda" else 1
        return max(self.nproc_per_node, min(self.nproc_per_node * per, int(work)))
        if self.timeout_s <= 0:
            raise ConfigError(f"run.distributed.timeout_s: {self.timeout_s} must be > 0")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Settings shared by every stage: randomness and hardware."""

    seed: int = 0
    device: str = "auto"
    deterministic: bool = False
    distributed: DistributedConfig = dataclasses.field(default_factory=DistributedConfig)
    # in-progress stage checkpoints (resume after a kill): <checkpoint_dir>/<stage>-<fingerprint>.pt
    checkpoint_dir: str = "data/09_checkpoints"

    def __post_init__(self) -> None:
        check_device_string(self.device)


def check_device_string(device: str, key: str = "run.device") -> None:
    if not isinstance(device, str) or not _DEVICE_RE.match(device):
        raise ConfigError(
            f"{key}: {device!r} is not a valid device; expected one of "
            "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
        )


def resolve_device(device: str = "auto") -> torch.device:
    """Turn a device setting into a ``torch.device``; 'auto' prefers CUDA, then MPS, then CPU."""
    check_device_string(device)
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"run.device: {device!r} requested but CUDA is not available here")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"run.device: {device!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    if device == "mps" and not (
        getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    ):
        raise ConfigError("run.device: 'mps' requested but MPS is not available here")
    return torch.device(device)


def describe_device(device: torch.device | str) -> str:
    """A readable name of the hardware behind ``device`` (for reports: costs are per machine)."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"{device.type} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch; optionally force deterministic kernels (slower on GPU)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    else:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False


def setup_run(run: RunConfig | Mapping[str, Any] | None) -> tuple[RunConfig, torch.device]:
    """Validate run settings, seed every generator and return the device to train on."""
    cfg = from_dict(RunConfig, run, where="run")
    device = resolve_device(cfg.device)
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        # a worker of torchrun / the elastic launcher: local ranks share the machine's GPUs round-robin
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]) % torch.cuda.device_count())
    seed_everything(cfg.seed, cfg.deterministic)
    return cfg, device


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch generator states in a form ``torch.load(weights_only=True)`` accepts."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": list(random.getstate()[1]) + [random.getstate()[0], random.getstate()[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[-2], tuple(py[:-2]), py[-1]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(cuda_states)
