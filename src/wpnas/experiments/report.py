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
from wpnas.train.scratch import GENOTYPE_KEYS

__all__ = [
    "accuracy_flops_figure",
    "check_genotype_keys",
    "closing_line",
    "ground_truth_summary",
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


def closing_line(genotype: Mapping[str, Any], evaluation: Mapping[str, Any] | None = None,
                 run_id: str | None = None) -> str:
    """One line with the answer: architecture, cost, accuracies, benchmark rank, MLflow run."""
    check_genotype_keys(genotype)
    parts = [
        f"found {genotype['space']} {genotype['arch']}",
        f"{float(genotype['flops_m']):.3f} MFLOPs",
        f"{float(genotype['params_m']):.4f} M params",
    ]
    predicted = _number(genotype.get("predicted_accuracy"))
    if predicted is not None:
        parts.append(f"predicted {predicted:.2f} %")
    supernet = _number(genotype.get("supernet_valid_acc"))
    if supernet is not None:
        parts.append(f"SuperNet valid {supernet:.2f} %")
    if evaluation:
        test = _number(evaluation.get("test_accuracy"))
        if test is not None:
            parts.append(f"from scratch test {test:.2f} % ({evaluation.get('epochs', '?')} epochs)")
        rank = evaluation.get("benchmark_rank")
        if rank is not None:
            parts.append(
                f"benchmark {evaluation.get('benchmark_metric')} {_percent(evaluation.get('benchmark_accuracy'))}, "
                f"rank {int(rank):,} of {int(evaluation.get('benchmark_size') or 0):,}"
            )
    if run_id:
        parts.append(f"MLflow run {run_id}")
    return "; ".join(parts)


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


def accuracy_flops_figure(pairs: pd.DataFrame | None, genotype: Mapping[str, Any]) -> Figure:
    """Accuracy against FLOPs of the ground-truth architectures, the found one marked."""
    check_genotype_keys(genotype)
    if pairs is None or len(pairs) == 0:
        return _message_figure("no ground-truth pairs to plot")
    for column in ("arch", "accuracy", "flops_m"):
        if column not in pairs:
            raise DataError(f"arch_accuracy_pairs: missing column {column!r}")
    figure = _new_figure(5.0, 3.8)
    ax = figure.add_subplot()
    ax.scatter(pairs["flops_m"].astype(float), pairs["accuracy"].astype(float), s=18, alpha=0.7,
               label=f"ground truth ({len(pairs)})")
    flops = float(genotype["flops_m"])
    arch = str(genotype["arch"])
    match = pairs[pairs["arch"].astype(str) == arch]
    if len(match):
        ax.scatter([flops], [float(match["accuracy"].iloc[0])], marker="*", s=220, color="red",
                   edgecolor="black", zorder=3, label="found (its ground truth)")
    else:
        predicted = _number(genotype.get("predicted_accuracy"))
        if predicted is not None:
            ax.scatter([flops], [predicted], marker="*", s=220, color="red", edgecolor="black", zorder=3,
                       label="found (predicted)")
        ax.axvline(flops, color="red", linewidth=1.0, linestyle="--", label="found: FLOPs")
    ax.set_xlabel("FLOPs (millions)")
    ax.set_ylabel("ground-truth accuracy (%)")
    ax.set_title(f"{genotype['space']}: accuracy vs FLOPs", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return figure


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
) -> str:
    """The run's ``summary.md``: what was found, how good it is, what it is compared with."""
    check_genotype_keys(genotype)
    lines = [f"# WPNAS run summary: {genotype['space']}", ""]
    lines += [closing_line(genotype, evaluation, run_id), ""]
    lines += ["## Found architecture", "", f"`{genotype['arch']}`", ""]
    method = genotype.get("method")
    if method:
        lines.append(f"- search method: `{method}` ({genotype.get('epochs', '?')} epochs, seed {genotype.get('seed', '?')})")
    lines.append(f"- FLOPs: {float(genotype['flops_m']):.3f} M; parameters: {float(genotype['params_m']):.4f} M"
                 + (f" (input {genotype['input_shape']}, {genotype.get('num_classes')} classes)"
                    if genotype.get("input_shape") else ""))
    if _number(genotype.get("joint_probability")) is not None:
        lines.append(f"- joint probability under alpha: {float(genotype['joint_probability']):.4g}")
    lines.append("")
    lines += _choices_table(genotype)
    lines += ["", "## Accuracy", "", "| measure | value |", "|---|---|"]
    lines.append(f"| SuperNet (inherited weights, valid) | {_percent(genotype.get('supernet_valid_acc'))} |")
    lines.append(f"| predictor | {_percent(genotype.get('predicted_accuracy'))} |")
    if evaluation:
        lines.append(f"| trained from scratch, valid | {_percent(evaluation.get('valid_accuracy'))} |")
        lines.append(f"| trained from scratch, test ({evaluation.get('epochs', '?')} epochs on "
                     f"{evaluation.get('device', '?')}) | {_percent(evaluation.get('test_accuracy'))} |")
        if evaluation.get("benchmark_rank") is not None:
            lines.append(f"| benchmark `{evaluation.get('benchmark_metric')}` | "
                         f"{_percent(evaluation.get('benchmark_accuracy'))}, rank {int(evaluation['benchmark_rank']):,} "
                         f"of {int(evaluation.get('benchmark_size') or 0):,} |")
        else:
            lines.append("| benchmark | no table configured (`evaluation.benchmark`) |")
    else:
        lines.append("| trained from scratch | not run (`kedro run --pipelines=evaluation`) |")
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
