"""The run report: closing line, summary.md and figures from a run's artifacts."""

import io

import numpy as np
import pandas as pd
import pytest

from wpnas.errors import DataError
from wpnas.experiments.report import (
    accuracy_flops_figure,
    alpha_warning,
    closing_line,
    ground_truth_summary,
    predictor_scatter_figure,
    summary_markdown,
)
from wpnas.spaces import get_space


@pytest.fixture
def space():
    return get_space("nats_tss", C=4, N=1)


@pytest.fixture
def pairs(space):
    archs = space.sample_unique(np.random.default_rng(3), 12)
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "arch": [space.to_string(a) for a in archs],
        "accuracy": rng.uniform(40, 90, size=12),
        "flops_m": [space.cost(a, (3, 8, 8), 10).flops_m for a in archs],
    })


@pytest.fixture
def genotype(space, pairs):
    arch = space.from_string(pairs["arch"].iloc[0])
    cost = space.cost(arch, (3, 8, 8), 10)
    return {
        "space": "nats_tss", "options": space.options(), "method": "wpnas", "arch": pairs["arch"].iloc[0],
        "choices": list(arch), "choice_names": space.choice_names(arch),
        "decisions": [d.name for d in space.decisions], "probabilities": [0.5] * space.num_decisions,
        "flops_m": cost.flops_m, "params_m": cost.params_m, "input_shape": [3, 8, 8], "num_classes": 10,
        "supernet_valid_acc": 61.5, "predicted_accuracy": 77.25, "joint_probability": 0.01, "epochs": 3, "seed": 0,
    }


EVALUATION = {"test_accuracy": 83.4, "valid_accuracy": 82.0, "epochs": 5, "device": "cpu",
              "benchmark_metric": "cifar10_test_200ep", "benchmark_accuracy": 93.1, "benchmark_rank": 1234,
              "benchmark_size": 15625}


def png_bytes(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def test_closing_line_names_everything(genotype):
    line = closing_line(genotype, EVALUATION, run_id="abc123")
    for text in (genotype["arch"], "MFLOPs", "M params", "predicted (not measured) 77.25 %", "test 83.40 %",
                 "cifar10_test_200ep 93.10 %", "rank 1,234 of 15,625", "MLflow run abc123"):
        assert text in line
    bare = closing_line({k: v for k, v in genotype.items() if k != "predicted_accuracy"})
    assert "predicted" not in bare and "rank" not in bare and "MLflow" not in bare


def test_summary_markdown(genotype, pairs):
    text = summary_markdown(genotype, EVALUATION, {"valid_kendall_tau": 0.4321, "valid_pairs": 4, "train_pairs": 8},
                            pairs, run_id="abc123", figures={"alpha": "alpha_lines.png"})
    assert text.startswith("# WPNAS run summary: nats_tss")
    assert f"`{genotype['arch']}`" in text and "rank 1,234 of 15,625" in text
    assert "Kendall tau 0.432 on 4 held-out pairs" in text
    gt = ground_truth_summary(pairs)
    assert gt["count"] == 12 and gt["best"] == pytest.approx(pairs["accuracy"].max())
    assert f"best {gt['best']:.2f} %" in text
    better = int((pairs["accuracy"] > pairs["accuracy"].iloc[0]).sum())
    assert f"{better} of 12 are better" in text
    assert "`alpha_lines.png`" in text
    # one row per decision in the choices table
    assert sum(line.startswith("| `") for line in text.splitlines()) == len(genotype["decisions"])
    no_eval = summary_markdown(genotype)
    assert "not run" in no_eval


def test_figures_are_non_empty_images(genotype, pairs):
    predictions = pd.DataFrame({"arch": pairs["arch"][:6], "accuracy": pairs["accuracy"][:6],
                                "predicted": pairs["accuracy"][:6] + 1.0})
    scatter = predictor_scatter_figure(predictions)
    assert "Kendall tau 1.000" in scatter.axes[0].get_title()  # a monotone prediction ranks perfectly
    flops = accuracy_flops_figure(pairs, genotype)
    labels = flops.axes[0].get_legend_handles_labels()[1]
    assert any(label.startswith("found (its ground truth): ") for label in labels)
    other = dict(genotype, arch="not among the pairs")
    labels = accuracy_flops_figure(pairs, other).axes[0].get_legend_handles_labels()[1]
    assert "found (SuperNet valid, inherited weights): 61.50 %" in labels
    assert not any("predict" in label for label in labels)  # a prediction is never plotted as accuracy
    for figure in (scatter, flops, predictor_scatter_figure(predictions[:1])):
        data = png_bytes(figure)
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000


def test_bad_artifacts_are_named(genotype, pairs):
    with pytest.raises(DataError, match="missing \\['flops_m'"):
        closing_line({k: v for k, v in genotype.items() if k != "flops_m"})
    with pytest.raises(DataError, match="predicted"):
        predictor_scatter_figure(pd.DataFrame({"arch": ["a", "b"], "accuracy": [1.0, 2.0]}))
    with pytest.raises(DataError, match="flops_m"):
        accuracy_flops_figure(pairs.drop(columns=["flops_m"]), genotype)


def test_a_clipped_prediction_is_labelled_as_such(genotype):
    """A predictor output at 100 % is the clip of a larger raw value: never shown as an accuracy."""
    clipped = dict(genotype, predicted_accuracy=100.0)
    metrics = {"valid_kendall_tau": 0.4123, "valid_pairs": 6}
    line = closing_line(clipped, EVALUATION, predictor_metrics=metrics)
    assert "predicted (not measured) 100.00 % (clipped at 100 %" in line
    assert "validation Kendall tau 0.412 on 6 held-out pairs" in line
    # the measured numbers come first, each marked as measured
    assert line.index("measured: from scratch test 83.40 %") < line.index("predicted (not measured)")
    assert "measured: SuperNet valid (inherited weights) 61.50 %" in line
    text = summary_markdown(clipped, EVALUATION, metrics)
    row = next(r for r in text.splitlines() if r.startswith("| prediction"))
    assert "not a measurement" in row and "clipped at 100 %" in row
    assert "clipped" not in closing_line(genotype, EVALUATION)  # 77.25 % is inside the range


def test_accuracy_axis_is_scaled_to_the_data(genotype, pairs):
    """Two failed fine-tunes near 10 % go under the axis; the found architecture is at a measured value."""
    failed = pairs.copy()
    failed["accuracy"] = np.linspace(84.0, 95.0, len(failed))
    failed.loc[[1, 2], "accuracy"] = [10.1, 9.8]
    clipped = dict(genotype, predicted_accuracy=100.0)
    figure = accuracy_flops_figure(failed, clipped)
    ax = figure.axes[0]
    bottom, top = ax.get_ylim()
    rest = failed["accuracy"].drop(index=[1, 2])
    assert rest.min() - 5 < bottom < rest.min() and rest.max() < top < 100
    labels = ax.get_legend_handles_labels()[1]
    assert "2 below the axis (9.8-10.1 %)" in labels
    assert f"found (its ground truth): {failed['accuracy'].iloc[0]:.2f} %" in labels
    assert ax.get_ylabel() == "measured accuracy (%)"


def test_near_uniform_alpha_is_flagged(genotype):
    undecided = dict(genotype, joint_probability=0.018, probabilities=[0.3] * len(genotype["decisions"]))
    warning = alpha_warning(undecided)
    assert "alpha has not converged" in warning and "joint probability 0.018" in warning
    assert warning in summary_markdown(undecided)
    assert alpha_warning(dict(genotype, joint_probability=0.9)) is None


def test_compare_runs_keeps_spaces_data_and_methods_apart():
    """The notebook's table: digits, CIFAR-10, DARTS and MobileNet runs at one b2 are four groups."""
    from wpnas.experiments.report import compare_runs

    runs = pd.DataFrame({
        "params.space.name": ["nats_tss", "nats_tss", "nats_tss", "darts", "mobilenet", "nats_tss"],
        "params.data.source": ["digits", "digits", "cifar10", "cifar10", "cifar10", "digits"],
        "params.search.method": ["wpnas", "wpnas", "wpnas", "wpnas", "wpnas", "spos_evolution"],
        "params.search.wpnas.reward.b2": ["0.001"] * 6,
        "metrics.evaluation/test_accuracy": [98.0, 97.0, 60.0, 10.0, 12.0, 95.0],
    })
    table = compare_runs(runs)
    assert len(table) == 5
    digits = table.loc[("nats_tss", "digits", "wpnas", "0.001")]
    assert digits[("metrics.evaluation/test_accuracy", "mean")] == pytest.approx(97.5)
    assert digits[("metrics.evaluation/test_accuracy", "count")] == 2
    assert set(table.index.get_level_values("space")) == {"nats_tss", "darts", "mobilenet"}
    # a run without a logged space is not averaged with the others
    unset = runs.assign(**{"params.space.name": [None] + ["nats_tss"] * 5})
    assert "(unset)" in set(compare_runs(unset).index.get_level_values("space"))


def test_alpha_figures_name_the_choice_and_read_numeric_choices_back():
    """NATS-SSS choices are numbers: after the CSV round trip the figures still find them."""
    from wpnas.search.trajectory import alpha_heatmap, alpha_trajectory_figure, trajectory_table

    space = get_space("nats_sss", channels=[8, 16, 24, 32])
    table = trajectory_table(space, [[np.full(4, 0.25)] * 5, [np.array([0.1, 0.2, 0.3, 0.4])] * 5])
    buffer = io.StringIO()
    table.to_csv(buffer, index=False)
    buffer.seek(0)
    loaded = pd.read_csv(buffer)
    assert loaded["choice"].dtype != object  # read back as numbers
    figure = alpha_trajectory_figure(loaded, space, chosen=[3, 3, 3, 3, 0])
    assert "p(choice | alpha) over the search epochs" in figure._suptitle.get_text()
    assert figure.axes[0].get_title() == "layer0: chose 32"
    assert "32 (chosen)" in figure.axes[0].get_legend_handles_labels()[1]
    assert len(png_bytes(alpha_heatmap(loaded, space))) > 2000


def test_the_found_architecture_is_on_the_axis_or_marked_under_it(genotype, pairs):
    clustered = pairs.assign(accuracy=np.linspace(84.0, 95.0, len(pairs)))
    near = dict(genotype, arch="not among the pairs", supernet_valid_acc=80.5)
    bottom, top = accuracy_flops_figure(clustered, near).axes[0].get_ylim()
    assert bottom < 80.5 and 95.0 < top < 100.0
    far = dict(near, supernet_valid_acc=12.0)  # an untrained SuperNet: at the bottom edge, its value named
    ax = accuracy_flops_figure(clustered, far).axes[0]
    assert ax.get_ylim()[0] > 70.0
    assert "found (SuperNet valid, inherited weights): 12.00 % (below the axis)" in ax.get_legend_handles_labels()[1]


def test_the_notebook_compares_runs_through_compare_runs():
    """The notebook's table of runs is compare_runs' (grouped by space, data, method), no grouping of its own."""
    import json
    from pathlib import Path

    notebook = json.loads((Path(__file__).resolve().parents[2] / "notebooks" / "wpnas_results.ipynb").read_text())
    code = "\n".join("".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code")
    assert "display(compare_runs(table))" in code and ".groupby(" not in code
    assert "check_report_inputs(genotype, evaluation" in code
    for column in ("params.space.name", "params.data.source", "params.search.method"):
        assert column in code  # kept in the table compare_runs groups


def test_the_final_selections_score_is_shown_as_measured_with_its_source(genotype, pairs):
    selected = dict(genotype, arch="not among the pairs", supernet_valid_acc=None, selection={
        "enabled": True, "score": 91.25, "scored_by": "benchmark:cifar10_valid_12ep", "origin": "refine",
        "new_evaluations": 7})
    line = closing_line(selected)
    assert ("measured: final selection's ground-truth score 91.25 % by benchmark:cifar10_valid_12ep "
            "(from the refine candidates, 7 new evaluations)") in line
    assert "SuperNet valid" not in line  # not measured for this architecture
    text = summary_markdown(selected, None, None, pairs)
    assert "| measured: final selection's ground-truth score (benchmark:cifar10_valid_12ep) | 91.25 % |" in text
    labels = accuracy_flops_figure(pairs, selected).axes[0].get_legend_handles_labels()[1]
    assert "found (its ground-truth score, final selection): 91.25 %" in labels
    off = dict(genotype, selection={"enabled": False})
    assert "final selection" not in closing_line(off)
