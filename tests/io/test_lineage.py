"""Lineage: the report's inputs carry the fingerprints of the run they came from, and a mix is refused."""

import io

import pandas as pd
import pytest

from wpnas.errors import DataError
from wpnas.io.lineage import (
    LINEAGE,
    check_report_inputs,
    evaluation_lineage,
    report_sources,
    search_lineage,
    stamp_predictor,
    table_fingerprint,
)


def csv_round_trip(frame: pd.DataFrame) -> pd.DataFrame:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    buffer.seek(0)
    return pd.read_csv(buffer)


@pytest.fixture
def run():
    """One run's report inputs, stamped as the stages stamp them."""
    pairs = pd.DataFrame({"arch": ["a|b", "c|d", "e|f"], "accuracy": [81.123456789, 79.5, 10.0]})
    predictions = pd.DataFrame({"arch": ["a|b", "c|d"], "accuracy": [81.123456789, 79.5],
                                "predicted": [80.0000001, 100.0]})
    trajectory = pd.DataFrame({"epoch": [0, 0, 1, 1], "decision": ["e0", "e0", "e0", "e0"],
                               "choice": ["none", "skip", "none", "skip"], "probability": [0.5, 0.5, 1 / 3, 2 / 3]})
    checkpoint, metrics = stamp_predictor({"weights": [1.0, 2.0]}, {"valid_kendall_tau": 1.0}, pairs, predictions)
    genotype = {"space": "nats_tss", "arch": "a|b", "choices": [0], "seed": 1, "epochs": 2,
                LINEAGE: search_lineage("s" * 16, trajectory, pairs, checkpoint)}
    evaluation = {"space": "nats_tss", "arch": "a|b", "test_accuracy": 90.0, LINEAGE: evaluation_lineage(genotype)}
    # what the report reads back: CSV and JSON round trips
    return dict(genotype=genotype, evaluation=evaluation, trajectory=csv_round_trip(trajectory),
                predictor_metrics=metrics, predictor_validation=csv_round_trip(predictions),
                pairs=csv_round_trip(pairs))


def test_one_runs_inputs_pass_after_the_file_round_trip(run):
    check_report_inputs(**run)
    rows = dict(report_sources(run["genotype"], run["evaluation"], run["predictor_metrics"]))
    assert "search ssssssssssssssss (seed 1, 2 epochs)" in rows["final_genotype"]


def test_evaluation_of_another_genotype_is_refused(run):
    """The issue's case: seed 1's genotype, the evaluation of seed 0's architecture."""
    seed0 = {**run["genotype"], "arch": "c|d", "seed": 0}
    other = {**run["evaluation"], "arch": "c|d", LINEAGE: evaluation_lineage(seed0)}
    with pytest.raises(DataError, match=r"different runs: evaluation_metrics trained nats_tss `c\|d`, "
                                        r"final_genotype is nats_tss `a\|b` \(search seed 1\)"):
        check_report_inputs(**dict(run, evaluation=other))
    # the same architecture found by another search is another genotype
    same_arch = {**run["evaluation"], LINEAGE: evaluation_lineage({**run["genotype"], "seed": 0})}
    with pytest.raises(DataError, match="same architecture, another search"):
        check_report_inputs(**dict(run, evaluation=same_arch))


def test_each_broken_link_is_named(run):
    later_pairs = run["pairs"].assign(accuracy=run["pairs"]["accuracy"] + 1)
    with pytest.raises(DataError, match="arch_accuracy_pairs has fingerprint"):
        check_report_inputs(**dict(run, pairs=later_pairs))
    with pytest.raises(DataError, match="alpha_trajectory has fingerprint"):
        check_report_inputs(**dict(run, trajectory=run["trajectory"].iloc[:2]))
    _, metrics = stamp_predictor({"weights": [3.0]}, {}, run["pairs"], run["predictor_validation"])
    with pytest.raises(DataError, match="predictor_metrics describe predictor"):
        check_report_inputs(**dict(run, predictor_metrics=metrics))
    with pytest.raises(DataError, match="predictor_validation has fingerprint"):
        check_report_inputs(**dict(run, predictor_validation=run["predictor_validation"].iloc[:1]))


def test_inputs_without_lineage_are_refused(run):
    old = {k: v for k, v in run["evaluation"].items() if k != LINEAGE}
    with pytest.raises(DataError, match="evaluation_metrics carries no lineage"):
        check_report_inputs(**dict(run, evaluation=old))


def test_table_fingerprint_ignores_float_noise_not_content():
    frame = pd.DataFrame({"a": ["x", "none"], "b": [1.0, 2.0]})
    assert table_fingerprint(frame) == table_fingerprint(frame.assign(b=[1.0 + 1e-9, 2.0]))
    assert table_fingerprint(frame) != table_fingerprint(frame.assign(b=[1.0, 2.1]))
    assert table_fingerprint(frame) != table_fingerprint(frame.rename(columns={"b": "c"}))
