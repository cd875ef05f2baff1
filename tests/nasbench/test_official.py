import sys

import numpy as np
import pytest

from wpnas.errors import ArchitectureError, ConfigError, DataError
from wpnas.nasbench import BenchmarkConfig, load_benchmark
from wpnas.nasbench.official import OfficialNatsTable


class FakeApi:
    """Mimics the parts of nats_bench's API the table uses."""

    def __init__(self, strings, accs):
        self.meta_archs = list(strings)
        self.accs = accs
        self.calls = []

    def __len__(self):
        return len(self.meta_archs)

    def get_more_info(self, index, dataset, iepoch=None, hp="12", is_random=True):
        self.calls.append((index, dataset, hp, is_random))
        return {"valid-accuracy": self.accs[index], "valid-loss": 1.0 / self.accs[index],
                "test-accuracy": self.accs[index] - 1.0, "comment": "text"}


STRINGS = ["8:8:8:8:8", "64:64:64:64:64", "16:16:16:16:16"]
ACCS = [70.0, 90.0, 80.0]


def test_fake_api_mapping(sss):
    api = FakeApi(STRINGS, ACCS)
    table = OfficialNatsTable(None, sss, dataset="cifar10-valid", hp="90",
                              metrics=("valid-accuracy", "valid-loss"), api=api)
    assert len(table) == 3 and table.metrics == ("valid-accuracy", "valid-loss")
    assert table.lookup("64:64:64:64:64", "valid-accuracy") == 90.0
    assert api.calls == [(1, "cifar10-valid", "90", False)]  # lazy, seed mean
    assert table.lookup("64:64:64:64:64", "valid-loss") == pytest.approx(1 / 90)
    assert len(api.calls) == 1  # cached
    np.testing.assert_array_equal(table.values("valid-accuracy"), ACCS)
    assert table.rank("16:16:16:16:16", "valid-accuracy") == 2
    assert table.rank("64:64:64:64:64", "valid-loss") == 1  # losses rank lower-is-better
    assert table.best("valid-accuracy").string == "64:64:64:64:64"
    with pytest.raises(ConfigError, match="test-accuracy"):
        table.lookup("8:8:8:8:8", "test-accuracy")  # not among the configured metrics
    with pytest.raises(ArchitectureError, match="not in the table"):
        table.lookup("8:8:8:8:16", "valid-accuracy")


def test_missing_key_is_a_clear_error(sss):
    table = OfficialNatsTable(None, sss, metrics=("valtest-accuracy",), api=FakeApi(STRINGS, ACCS))
    with pytest.raises(DataError, match="valtest-accuracy"):
        table.lookup("8:8:8:8:8", "valtest-accuracy")


def test_argument_validation(sss, tss, tmp_path):
    api = FakeApi(STRINGS, ACCS)
    with pytest.raises(ConfigError, match="hp '200'"):
        OfficialNatsTable(None, sss, hp="200", api=api)
    with pytest.raises(ConfigError, match="hp '90'"):
        OfficialNatsTable(None, tss, hp="90", api=api)
    with pytest.raises(ConfigError, match="dataset 'svhn'"):
        OfficialNatsTable(None, sss, dataset="svhn", api=api)
    with pytest.raises(ConfigError, match="accuracy"):
        OfficialNatsTable(None, sss, metrics=("accuracy",), api=api)
    with pytest.raises(DataError, match="does not exist"):
        OfficialNatsTable(tmp_path / "NATS-sss-v1_0-50262-simple", sss)
    with pytest.raises(ArchitectureError, match="official index 0"):
        OfficialNatsTable(None, tss, api=api)  # SSS strings in a TSS table


def test_missing_package_names_the_extra(sss, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "nats_bench", None)  # makes `import nats_bench` fail
    with pytest.raises(ConfigError, match=r'pip install "wpnas\[nats\]"'):
        OfficialNatsTable(tmp_path, sss)
    with pytest.raises(ConfigError, match=r'pip install "wpnas\[nats\]"'):
        load_benchmark(BenchmarkConfig(kind="nats_bench", path=str(tmp_path), metric="valid-accuracy"), sss)
