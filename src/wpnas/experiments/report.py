"""What a finished run shows its user: the closing line, ``summary.md`` and the report figures.

Everything here reads the artifacts the stages already wrote (the final genotype, the
evaluation metrics, the ground-truth pairs, the predictor's held-out predictions) and
builds plain values: a string, a markdown document, ``matplotlib.figure.Figure`` objects on
the Agg canvas (never registered with pyplot). Nothing trains and nothing is logged here;
the reporting node decides where the results go.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from wpnas.errors import DataError
from wpnas.nasbench.metrics import kendall_tau
from wpnas.predictors.models import ACCURACY_RANGE
from wpnas.train.scratch import GENOTYPE_KEYS

__all__ = [
    "accuracy_flops_figure",
    "alpha_warning",
    "check_genotype_keys",
    "closing_line",
    "compare_runs",
    "ground_truth_summary",
    "prediction_text",
    "selection_score",
    "selection_text",
    "predictor_scatter_figure",
    "summary_markdown",
]

#: Keys the report reads from a ``final_genotype`` (written by ``SearchRunner.final_genotype``):
#: the ones evaluation needs, plus the cost.
REPORT_KEYS = (*GENOTYPE_KEYS, "flops_m", "params_m")


def check_genotype_keys(genotype: Mapping[str, Any], source: str = "final_genotype") -> None:
    if not isinstance(genotype, Mapping):
        raise DataError(f"{source}: expected a JSON object, got {type(genotype).__name__}")
    missing = [k for k in REPORT_KEYS if k not in genotype]
    if missing:
        raise DataError(f"{source}: missing {missing}; a search writes {list(REPORT_KEYS)} and more")


def _number(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _percent(value: Any) -> str:
    number = _number(value)
    return "n/a" if number is None else f"{number:.2f} %"


def ground_truth_summary(pairs: pd.DataFrame | None) -> dict[str, Any]:
    """Count, mean and best of the (architecture, accuracy) pairs (empty dict without pairs)."""
    if pairs is None or len(pairs) == 0 or "accuracy" not in pairs:
        return {}
    accuracy = pairs["accuracy"].astype(float)
    best = int(accuracy.to_numpy().argmax())
    return {
        "count": int(len(pairs)),
        "mean": float(accuracy.mean()),
        "best": float(accuracy.iloc[best]),
        "best_arch": str(pairs["arch"].iloc[best]) if "arch" in pairs else None,
    }


def selection_score(genotype: Mapping[str, Any]) -> tuple[float, str] | None:
    """The final selection's score of the found architecture and what measured it (the
    ground-truth method: a benchmark column or a fine-tune), or None without a selection."""
    chosen = genotype.get("selection") or {}
    score = _number(chosen.get("score")) if chosen.get("enabled") else None
    if score is None:
        return None
    scored_by = str(chosen.get("scored_by") or "the ground-truth method")
    return score, scored_by


def selection_text(genotype: Mapping[str, Any]) -> str | None:
    """The selection's score labelled with its source and origin, for the closing line and summary."""
    found = selection_score(genotype)
    if found is None:
        return None
    chosen = genotype["selection"]
    return (f"measured: final selection's ground-truth score {found[0]:.2f} % by {found[1]} "
            f"(from the {chosen.get('origin', '?')} candidates, {chosen.get('new_evaluations', '?')} new evaluations)")


def prediction_text(genotype: Mapping[str, Any], predictor_metrics: Mapping[str, Any] | None = None) -> str | None:
    """The predictor's number for the found architecture, labelled as a prediction: with the
    predictor's Kendall tau on its held-out pairs, and saying so when the value sits at a
    bound of the predictor's output range (it is clipped there: the true prediction was
    beyond it). None when the search used no predictor."""
    predicted = _number(genotype.get("predicted_accuracy"))
    if predicted is None:
        return None
    notes = []
    low, high = ACCURACY_RANGE
    if predicted >= high or predicted <= low:
        notes.append(f"clipped at {high if predicted >= high else low:g} %: the predictor's raw output was beyond "
                     "its range, not a measurement")
    tau = _number((predictor_metrics or {}).get("valid_kendall_tau"))
    if tau is not None:
        notes.append(f"predictor's validation Kendall tau {tau:.3f} on {(predictor_metrics or {}).get('valid_pairs', '?')}"
                     " held-out pairs")
    return f"predicted (not measured) {predicted:.2f} %" + (f" ({'; '.join(notes)})" if notes else "")


def closing_line(genotype: Mapping[str, Any], evaluation: Mapping[str, Any] | None = None,
                 run_id: str | None = None, predictor_metrics: Mapping[str, Any] | None = None) -> str:
    """One line with the answer: architecture, cost, the measured accuracies (from scratch,
    inherited weights, benchmark), then the predictor's prediction labelled as one, MLflow run."""
    check_genotype_keys(genotype)
    parts = [
        f"found {genotype['space']} {genotype['arch']}",
        f"{float(genotype['flops_m']):.3f} MFLOPs",
        f"{float(genotype['params_m']):.4f} M params",
    ]
    latency = latency_text(genotype)
    if latency is not None:
        parts.append(latency)
    if evaluation:
        test = _number(evaluation.get("test_accuracy"))
        if test is not None:
            parts.append(f"measured: from scratch test {test:.2f} % ({evaluation.get('epochs', '?')} epochs)")
    selected = selection_text(genotype)
    if selected is not None:
        parts.append(selected)
    supernet = _number(genotype.get("supernet_valid_acc"))
    if supernet is not None:
        parts.append(f"measured: SuperNet valid (inherited weights) {supernet:.2f} %")
    if evaluation:
        rank = evaluation.get("benchmark_rank")
        if rank is not None:
            parts.append(
                f"benchmark {evaluation.get('benchmark_metric')} {_percent(evaluation.get('benchmark_accuracy'))}, "
                f"rank {int(rank):,} of {int(evaluation.get('benchmark_size') or 0):,}"
            )
    predicted = prediction_text(genotype, predictor_metrics)
    if predicted is not None:
        parts.append(predicted)
    if run_id:
        parts.append(f"MLflow run {run_id}")
    return "; ".join(parts)


def latency_text(genotype: Mapping[str, Any]) -> str | None:
    """The found network's measured latency (the whole network timed, not the table's sum), when the
    search priced or bounded latency."""
    measured = _number(genotype.get("latency_ms"))
    if measured is None:
        return None
    table = _number(genotype.get("latency_table_ms"))
    bound = _number(genotype.get("max_latency_ms"))
    return (f"measured latency {measured:.3f} ms on {genotype.get('latency_device', '?')}"
            + (f" (table {table:.3f} ms" + (f", bound {bound:g} ms)" if bound is not None else ")")
               if table is not None else ""))


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _message_figure(text: str) -> Figure:
    figure = _new_figure(4.5, 1.2)
    axes = figure.add_subplot()
    axes.axis("off")
    axes.text(0.5, 0.5, text, ha="center", va="center", fontsize=8, wrap=True)
    return figure


def predictor_scatter_figure(predictions: pd.DataFrame | None) -> Figure:
    """Predicted against true accuracy of the predictor's held-out pairs, with Kendall tau."""
    if predictions is None or len(predictions) < 2:
        return _message_figure("fewer than 2 held-out pairs: no predictor validation (predictor.valid_size)")
    for column in ("accuracy", "predicted"):
        if column not in predictions:
            raise DataError(f"predictor_validation: missing column {column!r} (expected arch, accuracy, predicted)")
    true = predictions["accuracy"].astype(float).to_numpy()
    pred = predictions["predicted"].astype(float).to_numpy()
    tau = kendall_tau(pred, true)
    figure = _new_figure(4.2, 4.0)
    ax = figure.add_subplot()
    ax.scatter(true, pred, s=22, alpha=0.8)
    low, high = float(min(true.min(), pred.min())), float(max(true.max(), pred.max()))
    pad = max(0.5, 0.05 * (high - low))
    ax.plot([low - pad, high + pad], [low - pad, high + pad], color="grey", linewidth=0.8, linestyle="--")
    ax.set_xlim(low - pad, high + pad)
    ax.set_ylim(low - pad, high + pad)
    ax.set_xlabel("true accuracy (%)")
    ax.set_ylabel("predicted accuracy (%)")
    tau_text = "n/a" if math.isnan(tau) else f"{tau:.3f}"
    ax.set_title(f"predictor on {len(true)} held-out pairs: Kendall tau {tau_text}", fontsize=9)
    ax.grid(alpha=0.3)
    return figure


def _found_accuracy(pairs: pd.DataFrame, genotype: Mapping[str, Any]) -> tuple[float, str] | None:
    """A measured accuracy of the found architecture comparable with the pairs' (never a
    prediction): its own ground truth when it is one of the pairs, else its SuperNet valid
    accuracy with inherited weights (what a fine-tuned ground truth starts from)."""
    match = pairs[pairs["arch"].astype(str) == str(genotype["arch"])]
    if len(match):
        return float(match["accuracy"].iloc[0]), "found (its ground truth)"
    selected = selection_score(genotype)
    if selected is not None:  # scored by the same method as the pairs
        return selected[0], "found (its ground-truth score, final selection)"
    supernet = _number(genotype.get("supernet_valid_acc"))
    if supernet is not None:
        return supernet, "found (SuperNet valid, inherited weights)"
    return None


def accuracy_axis(values: np.ndarray, shown: float | None = None) -> tuple[float, float, float]:
    """(bottom, top, cut) of an accuracy axis scaled to the bulk of ``values``: points more
    than 3 interquartile ranges (at least 3 percentage points) below the lower quartile fall
    under ``cut`` and are drawn at the bottom edge, so a few failed runs near chance do not
    squash the rest; -inf for ``cut`` when none does. ``shown`` (the found architecture) is
    inside the axis unless it falls under ``cut`` too."""
    q1, q3 = np.percentile(values, [25, 75])
    cut = q1 - 3.0 * max(q3 - q1, 1.0)
    kept = values[values >= cut]
    if len(kept) == len(values) and (shown is None or shown >= cut):
        cut = -np.inf  # nothing falls under it
    low, high = float(kept.min()), float(kept.max())
    if shown is not None and shown >= cut:
        low, high = min(low, shown), max(high, shown)
    pad = max(0.5, 0.08 * (high - low))
    return low - pad, high + pad, cut


def accuracy_flops_figure(pairs: pd.DataFrame | None, genotype: Mapping[str, Any]) -> Figure:
    """Measured accuracy against FLOPs of the ground-truth architectures, the found one marked
    at a measured accuracy (or, without one, as a vertical line at its FLOPs); the axis is
    scaled to the data, outliers far below shown at its bottom edge. When latency was the
    search's cost (``genotype["cost"] == "latency"``) and ``pairs`` has a ``latency_ms`` column
    (the table's), latency is the x-axis and the found network sits at its measured latency."""
    check_genotype_keys(genotype)
    if pairs is None or len(pairs) == 0:
        return _message_figure("no ground-truth pairs to plot")
    for column in ("arch", "accuracy", "flops_m"):
        if column not in pairs:
            raise DataError(f"arch_accuracy_pairs: missing column {column!r}")
    figure = _new_figure(5.0, 3.8)
    ax = figure.add_subplot()
    by_latency = (genotype.get("cost") == "latency" and "latency_ms" in pairs
                  and _number(genotype.get("latency_ms")) is not None)
    column, name, unit = ("latency_ms", "latency", "ms") if by_latency else ("flops_m", "FLOPs", "millions")
    flops_all = pairs[column].astype(float).to_numpy()
    accuracy = pairs["accuracy"].astype(float).to_numpy()
    flops = float(genotype[column])
    found = _found_accuracy(pairs, genotype)
    bottom, top, cut = accuracy_axis(accuracy, None if found is None else found[0])
    low = accuracy < cut
    source = f" ({pairs['source'].iloc[0]})" if "source" in pairs and len(pairs) else ""
    ax.scatter(flops_all[~low], accuracy[~low], s=18, alpha=0.7, label=f"ground truth{source}: {int((~low).sum())}")
    if low.any():
        ax.scatter(flops_all[low], np.full(int(low.sum()), bottom), marker="v", s=28, color="grey", clip_on=False,
                   label=f"{int(low.sum())} below the axis ({accuracy[low].min():.1f}-{accuracy[low].max():.1f} %)")
    if found is not None:
        under = found[0] < cut
        ax.scatter([flops], [bottom if under else found[0]], marker="*", s=220, color="red", edgecolor="black",
                   zorder=3, clip_on=False, label=f"{found[1]}: {found[0]:.2f} %" + (" (below the axis)" if under else ""))
    else:
        ax.axvline(flops, color="red", linewidth=1.0, linestyle="--", label=f"found: {name} (no measured accuracy)")
    ax.set_ylim(bottom, top)
    ax.set_xlabel(f"{name} ({unit})" + (f"; ground truth: table, found: measured on {genotype.get('latency_device')}"
                                        if by_latency else ""), fontsize=8 if by_latency else None)
    ax.set_ylabel("measured accuracy (%)")
    ax.set_title(f"{genotype['space']}: accuracy vs {name}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return figure


#: Below this joint probability the found architecture is less likely than not under alpha.
CONVERGED_JOINT_PROBABILITY = 0.5


def alpha_warning(genotype: Mapping[str, Any]) -> str | None:
    """A warning when alpha has not converged on the found architecture (its joint probability
    under alpha below :data:`CONVERGED_JOINT_PROBABILITY`): the argmax of a near-uniform
    distribution is close to an arbitrary pick. None otherwise, or without alpha."""
    joint = _number(genotype.get("joint_probability"))
    if joint is None or joint >= CONVERGED_JOINT_PROBABILITY:
        return None
    chosen = [p for p in (_number(v) for v in genotype.get("probabilities") or []) if p is not None]
    weak = sum(p < 0.5 for p in chosen)
    detail = f"; {weak} of {len(chosen)} decisions have their choice at p < 0.5" if chosen else ""
    return (f"alpha has not converged: the found architecture has joint probability {joint:.3g} under alpha"
            f"{detail} (more search epochs, or a larger search.wpnas.alpha_lr)")


def _choices_table(genotype: Mapping[str, Any]) -> list[str]:
    decisions = genotype.get("decisions") or []
    names = genotype.get("choice_names") or []
    probabilities = genotype.get("probabilities") or []
    if not decisions or len(decisions) != len(names):
        return []
    with_p = len(probabilities) == len(decisions)
    lines = ["| decision | choice |" + (" p(choice) |" if with_p else ""),
             "|---|---|" + ("---|" if with_p else "")]
    for i, (decision, name) in enumerate(zip(decisions, names)):
        row = f"| `{decision}` | {name} |"
        if with_p:
            p = _number(probabilities[i])
            row += " n/a |" if p is None else f" {p:.3f} |"
        lines.append(row)
    return lines


def summary_markdown(
    genotype: Mapping[str, Any],
    evaluation: Mapping[str, Any] | None = None,
    predictor_metrics: Mapping[str, Any] | None = None,
    pairs: pd.DataFrame | None = None,
    run_id: str | None = None,
    figures: Mapping[str, str] | None = None,
    sources: list[tuple[str, str]] | None = None,
) -> str:
    """The run's ``summary.md``: what was found, how good it is, what it is compared with,
    and (``sources``: (input, origin) rows) which run each input came from."""
    check_genotype_keys(genotype)
    lines = [f"# WPNAS run summary: {genotype['space']}", ""]
    lines += [closing_line(genotype, evaluation, run_id, predictor_metrics), ""]
    if sources:
        lines += ["## Sources", "", "Every input below belongs to one run (checked by fingerprint):", "",
                  "| input | from |", "|---|---|"]
        lines += [f"| `{name}` | {origin} |" for name, origin in sources]
        lines.append("")
    lines += ["## Found architecture", "", f"`{genotype['arch']}`", ""]
    method = genotype.get("method")
    if method:
        lines.append(f"- search method: `{method}` ({genotype.get('epochs', '?')} epochs, seed {genotype.get('seed', '?')})")
    lines.append(f"- FLOPs: {float(genotype['flops_m']):.3f} M; parameters: {float(genotype['params_m']):.4f} M"
                 + (f" (input {genotype['input_shape']}, {genotype.get('num_classes')} classes)"
                    if genotype.get("input_shape") else ""))
    latency = latency_text(genotype)
    if latency is not None:
        lines.append(f"- latency: {latency} (latency table {genotype.get('latency_fingerprint', '?')}; reward cost "
                     f"`{genotype.get('cost', 'flops')}`)")
    if _number(genotype.get("joint_probability")) is not None:
        lines.append(f"- joint probability under alpha: {float(genotype['joint_probability']):.4g}")
    undecided = alpha_warning(genotype)
    if undecided:
        lines.append(f"- **{undecided}**")
    lines.append("")
    lines += _choices_table(genotype)
    lines += ["", "## Accuracy", "", "| measure | value |", "|---|---|"]
    selected = selection_score(genotype)
    if selected is not None:
        lines.append(f"| measured: final selection's ground-truth score ({selected[1]}) | {selected[0]:.2f} % |")
    lines.append(f"| measured: SuperNet (inherited weights, valid) | {_percent(genotype.get('supernet_valid_acc'))} |")
    if evaluation:
        lines.append(f"| measured: trained from scratch, valid | {_percent(evaluation.get('valid_accuracy'))} |")
        lines.append(f"| measured: trained from scratch, test ({evaluation.get('epochs', '?')} epochs on "
                     f"{evaluation.get('device', '?')}) | {_percent(evaluation.get('test_accuracy'))} |")
        if evaluation.get("benchmark_rank") is not None:
            lines.append(f"| benchmark `{evaluation.get('benchmark_metric')}` | "
                         f"{_percent(evaluation.get('benchmark_accuracy'))}, rank {int(evaluation['benchmark_rank']):,} "
                         f"of {int(evaluation.get('benchmark_size') or 0):,} |")
        else:
            lines.append("| benchmark | no table configured (`evaluation.benchmark`) |")
    else:
        lines.append("| trained from scratch | not run (`kedro run --pipelines=evaluation`) |")
    predicted = prediction_text(genotype, predictor_metrics)
    lines.append(f"| prediction (not a measurement) | {predicted or 'no predictor in this search'} |")
    gt = ground_truth_summary(pairs)
    if gt:
        lines += ["", "## Compared with the ground truth", "",
                  f"{gt['count']} architectures: mean {gt['mean']:.2f} %, best {gt['best']:.2f} % "
                  f"(`{gt['best_arch']}`)."]
        if pairs is not None and "arch" in pairs:
            match = pairs[pairs["arch"].astype(str) == str(genotype["arch"])]
            if len(match):
                better = int((pairs["accuracy"].astype(float) > float(match["accuracy"].iloc[0])).sum())
                lines.append(f"The found architecture is one of them: {float(match['accuracy'].iloc[0]):.2f} %, "
                             f"{better} of {gt['count']} are better.")
    if predictor_metrics:
        tau = _number(predictor_metrics.get("valid_kendall_tau"))
        if tau is not None:
            lines += ["", "## Predictor", "",
                      f"Kendall tau {tau:.3f} on {predictor_metrics.get('valid_pairs', '?')} held-out pairs "
                      f"(trained on {predictor_metrics.get('train_pairs', '?')})."]
    if figures:
        lines += ["", "## Figures", ""]
        lines += [f"- {title}: `{name}`" for title, name in figures.items()]
    return "\n".join(lines) + "\n"


#: What makes runs comparable (short name -> column of ``mlflow.search_runs``): runs that differ
#: in any of these are never averaged together.
RUN_GROUPS = {
    "space": "params.space.name",
    "data": "params.data.source",
    "method": "params.search.method",
    "env": "tags.kedro_env",
    "b2": "params.search.wpnas.reward.b2",
}


def compare_runs(runs: pd.DataFrame, metrics: list[str] | None = None) -> pd.DataFrame:
    """Mean, standard deviation and count of the runs' metrics per space, data, method,
    Kedro environment and b2 (``runs`` as ``mlflow.search_runs`` returns them; ``metrics``:
    its ``metrics.*`` columns by default). A run lacking a grouping column is grouped as
    ``(unset)``, never with the others."""
    metrics = [c for c in runs.columns if c.startswith("metrics.")] if metrics is None else list(metrics)
    keys = {name: column for name, column in RUN_GROUPS.items() if column in runs.columns}
    if not len(runs) or not metrics:
        return pd.DataFrame()
    table = runs[[*keys.values(), *metrics]].copy()
    for column in keys.values():
        table[column] = table[column].astype(object).where(table[column].notna(), "(unset)").astype(str)
    table = table.rename(columns={column: name for name, column in keys.items()})
    if not keys:
        return table[metrics].agg(["mean", "std", "count"])
    return table.groupby(list(keys))[metrics].agg(["mean", "std", "count"])
