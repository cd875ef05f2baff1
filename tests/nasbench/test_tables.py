import time

import numpy as np
import pytest

from wpnas.errors import ArchitectureError, ConfigError, DataError
from wpnas.nasbench import BenchmarkConfig, BenchmarkTable, load_benchmark
from wpnas.config import from_dict

SSS_ROWS = [
    ("8:8:8:8:8", 70.0, 1.5),
    ("16:8:8:8:8", 75.0, 1.2),
    ("64:64:64:64:64", 90.0, 0.3),
    ("32:32:32:32:32", 90.0, 0.5),
    ("8:16:24:32:64", 80.0, 0.9),
]


def write_csv(path, rows, header="index,arch,acc,loss"):
    lines = [header] + [f"{i},{a},{acc},{loss}" for i, (a, acc, loss) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def small(tmp_path, sss):
    return BenchmarkTable.from_csv(write_csv(tmp_path / "t.csv", SSS_ROWS), sss, lower_is_better=["loss"])


def test_lookup_any_spelling(small, sss):
    assert small.metrics == ("acc", "loss")
    assert len(small) == 5
    assert small.lookup("8:16:24:32:64", "acc") == 80.0
    assert small.lookup(" 08:16:24:32:64 ", "acc") == 80.0  # parsed, then found by canonical form
    assert small.lookup(sss.from_string("16:8:8:8:8"), "loss") == 1.2
    assert small.lookup([1, 0, 0, 0, 0], "acc") == 75.0
    assert "64:64:64:64:64" in small and (7, 7, 7, 7, 7) in small
    assert "8:8:8:8:16" not in small and "garbage" not in small
    assert small.strings[2] == "64:64:64:64:64" and small.archs[2] == (7, 7, 7, 7, 7)
    np.testing.assert_array_equal(small.values("acc"), [70, 75, 90, 90, 80])
    np.testing.assert_array_equal(small.lookup_many(["64:64:64:64:64", "8:8:8:8:8"], "acc"), [90, 70])
    assert small.tokens.shape == (5, 5)


def test_values_is_a_copy(small):
    small.values("acc")[0] = -1
    assert small.lookup("8:8:8:8:8", "acc") == 70.0


def test_rank_min_method_and_best(small):
    assert small.rank("64:64:64:64:64", "acc") == 1
    assert small.rank("32:32:32:32:32", "acc") == 1  # tie shares the best rank
    assert small.rank("8:16:24:32:64", "acc") == 3
    assert small.rank("8:8:8:8:8", "acc") == 5
    np.testing.assert_array_equal(small.ranks("acc"), [5, 4, 1, 1, 3])
    best = small.best("acc")
    assert best.value == 90.0 and best.string == "64:64:64:64:64"  # first of the tie
    # loss is lower-is-better
    assert small.rank("64:64:64:64:64", "loss") == 1
    assert small.best("loss").string == "64:64:64:64:64"
    np.testing.assert_array_equal(small.ranks("loss"), [5, 4, 1, 2, 3])


def test_errors(tmp_path, sss, tss, small):
    missing = tmp_path / "nope.csv"
    with pytest.raises(DataError, match="nope.csv"):
        BenchmarkTable.from_csv(missing, sss)
    bad = write_csv(tmp_path / "bad.csv", SSS_ROWS[:2] + [("8:8:8:8:9", 1.0, 1.0)])
    with pytest.raises(ArchitectureError, match=r"row 2 .*'8:8:8:8:9'"):
        BenchmarkTable.from_csv(bad, sss)
    with pytest.raises(ArchitectureError, match="row 0"):
        BenchmarkTable.from_csv(write_csv(tmp_path / "t.csv", SSS_ROWS), tss)  # another space
    dup = write_csv(tmp_path / "dup.csv", SSS_ROWS + [("08:8:8:8:8", 1.0, 1.0)])
    with pytest.raises(DataError, match="repeats"):
        BenchmarkTable.from_csv(dup, sss)
    noarch = tmp_path / "noarch.csv"
    noarch.write_text("index,acc\n0,1.0\n")
    with pytest.raises(DataError, match="'arch'"):
        BenchmarkTable.from_csv(noarch, sss)
    text = tmp_path / "text.csv"
    text.write_text("arch,acc\n8:8:8:8:8,high\n")
    with pytest.raises(DataError, match="not numeric"):
        BenchmarkTable.from_csv(text, sss)
    with pytest.raises(ConfigError, match=r"'accuracy'.*\['acc', 'loss'\]"):
        small.lookup("8:8:8:8:8", "accuracy")
    with pytest.raises(ArchitectureError, match="not in the table"):
        small.lookup("8:8:8:8:16", "acc")
    with pytest.raises(ArchitectureError):
        small.rank("8:8:8:8:7", "acc")


def test_missing_values_are_skipped_by_rank_and_best(tmp_path, sss):
    path = tmp_path / "nan.csv"
    path.write_text("arch,acc\n8:8:8:8:8,70\n16:8:8:8:8,\n64:64:64:64:64,90\n")
    table = BenchmarkTable.from_csv(path, sss)
    assert np.isnan(table.lookup("16:8:8:8:8", "acc"))
    assert table.rank("8:8:8:8:8", "acc") == 2
    assert table.best("acc").value == 90
    with pytest.raises(DataError, match="missing"):
        table.rank("16:8:8:8:8", "acc")


def test_load_benchmark_factory(tmp_path, sss):
    path = write_csv(tmp_path / "t.csv", SSS_ROWS)
    cfg = from_dict(BenchmarkConfig, {"kind": "csv", "path": str(path), "metric": "acc"})
    table = load_benchmark(cfg, sss)
    assert table.lookup("8:8:8:8:8", "acc") == 70.0
    with pytest.raises(ConfigError, match="'nope'"):
        load_benchmark(BenchmarkConfig(path=str(path), metric="nope"), sss)
    with pytest.raises(ConfigError, match="kind"):
        from_dict(BenchmarkConfig, {"kind": "sqlite", "path": str(path)})
    with pytest.raises(ConfigError, match="path"):
        BenchmarkConfig(path="")


def test_shared_nb201_table(shared_tables, tss):
    start = time.perf_counter()
    table = BenchmarkTable.from_csv(shared_tables / "nb201" / "nb201_cifar10.csv", tss)
    assert time.perf_counter() - start < 3.0
    assert len(table) == 15625
    assert set(table.metrics) == {"cifar10_valid_12ep", "cifar10_test_12ep", "cifar10_valid_200ep", "cifar10_test_200ep"}
    best = table.best("cifar10_test_200ep")
    assert best.value == pytest.approx(94.373)
    assert best.string == "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
    assert table.rank(best.string, "cifar10_test_200ep") == 1
    assert table.lookup(best.arch, "cifar10_test_200ep") == pytest.approx(94.373)
    # official index 1 of the README example
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    assert table.lookup(arch, "cifar10_test_200ep") == pytest.approx(93.66)
    assert table.index[table.row(arch)] == 1
    # every cell of the space is there exactly once
    assert len(set(table.archs)) == tss.size


def test_shared_sss_table(shared_tables, sss):
    start = time.perf_counter()
    table = BenchmarkTable.from_csv(shared_tables / "nats_sss" / "nats_sss_cifar10.csv", sss)
    assert time.perf_counter() - start < 3.0
    assert len(table) == 32768 == sss.size
    best = table.best("cifar10_valid_90ep")
    assert best.string == "64:64:64:64:64" and best.value == pytest.approx(90.712)
    assert table.lookup("8:8:8:8:16", "cifar10_valid_90ep") == pytest.approx(80.056)
    # the official order is itertools.product with the last position fastest
    assert table.row("8:8:8:8:16") == 1 and table.row((0, 0, 0, 1, 0)) == 8
    ranks = table.ranks("cifar10_valid_90ep")
    assert ranks.min() == 1 and ranks[table.row(best.string)] == 1
