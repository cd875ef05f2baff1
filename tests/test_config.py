from dataclasses import dataclass

import pytest
import torch

from wpnas.config import RunConfig, from_dict, resolve_device, setup_run
from wpnas.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    a: int = 1
    b: tuple[float, ...] = (1.0,)


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    inner: Inner = Inner()
    maybe: int | None = None


def test_from_dict_nested_and_types():
    cfg = from_dict(Outer, {"name": "y", "inner": {"a": 3, "b": [1, 2]}, "maybe": None})
    assert cfg.inner == Inner(3, (1.0, 2.0)) and cfg.maybe is None
    with pytest.raises(ConfigError, match=r"Outer.inner: unknown setting\(s\) \['c'\]"):
        from_dict(Outer, {"inner": {"c": 1}})
    with pytest.raises(ConfigError, match="Outer.inner.a: expected an integer"):
        from_dict(Outer, {"inner": {"a": "three"}})


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "CPU", "", "tpu:0"])
def test_invalid_device_strings(bad):
    with pytest.raises(ConfigError, match="not a valid device"):
        RunConfig(device=bad)


def test_auto_device_and_unavailable_cuda():
    assert resolve_device("cpu") == torch.device("cpu")
    dev = resolve_device("auto")
    assert dev.type == ("cuda" if torch.cuda.is_available() else dev.type)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda:0")


def test_setup_run_seeds_everything():
    setup_run({"seed": 5, "device": "cpu"})
    a = torch.rand(3)
    setup_run({"seed": 5, "device": "cpu"})
    assert torch.equal(a, torch.rand(3))


def test_unknown_keys_name_the_nearest_known_one():
    from wpnas.config import did_you_mean
    from wpnas.errors import ConfigError
    from wpnas.search import SearchConfig

    with pytest.raises(ConfigError, match=r"unknown setting\(s\) \['epoks'\] \(did you mean 'epochs'\?\)"):
        from_dict(SearchConfig, {"epoks": 3}, where="search")
    assert did_you_mean(["zzz"], ["epochs"]) == ""
    assert did_you_mean(["epoks", "batchsize"], ["epochs", "batch_size"]) == (
        " (did you mean 'epoks' -> 'epochs', 'batchsize' -> 'batch_size'?)")
