"""The ``alpha_trajectory`` table and its figures.

One row per (epoch, decision, choice) with the probability of that choice after that
epoch; epoch 0 is the state before the first update (uniform for a fresh search).
Figures are plain ``matplotlib.figure.Figure`` objects on the Agg canvas, never
registered with pyplot, so they need no closing and leak nothing in long runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from wpnas.errors import DataError
from wpnas.spaces.base import SearchSpace

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not with the search
    from matplotlib.figure import Figure

COLUMNS = ("epoch", "decision", "choice", "probability")


def trajectory_table(
    space: SearchSpace,
    probabilities: Sequence[Sequence[Sequence[float]]],
    epochs: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Long table from per-epoch probabilities (``probabilities[e][l][k]``; ``epochs`` default 0..E)."""
    epochs = list(range(len(probabilities))) if epochs is None else [int(e) for e in epochs]
    if len(epochs) != len(probabilities):
        raise DataError(f"got {len(epochs)} epochs for {len(probabilities)} probability snapshots")
    rows_epoch, rows_decision, rows_choice, rows_prob = [], [], [], []
    for epoch, snapshot in zip(epochs, probabilities):
        if len(snapshot) != space.num_decisions:
            raise DataError(
                f"epoch {epoch}: {len(snapshot)} decisions of probabilities, {space.name} has {space.num_decisions}"
            )
        for decision, probs in zip(space.decisions, snapshot):
            if len(probs) != decision.size:
                raise DataError(
                    f"epoch {epoch}, decision {decision.name!r}: {len(probs)} probabilities for {decision.size} choices"
                )
            for choice, p in zip(decision.choices, probs):
                rows_epoch.append(epoch)
                rows_decision.append(decision.name)
                rows_choice.append(choice)
                rows_prob.append(float(p))
    return pd.DataFrame(
        {
            "epoch": np.asarray(rows_epoch, dtype=np.int64),
            "decision": rows_decision,
            "choice": rows_choice,
            "probability": np.asarray(rows_prob, dtype=np.float64),
        },
        columns=list(COLUMNS),
    )


def probability_matrix(trajectory: pd.DataFrame, space: SearchSpace, epoch: int | None = None) -> np.ndarray:
    """(L, K_max) probabilities at ``epoch`` (default: the last), NaN at padded choices."""
    missing = [c for c in COLUMNS if c not in trajectory.columns]
    if missing:
        raise DataError(f"alpha trajectory lacks column(s) {missing}; expected {list(COLUMNS)}")
    if trajectory.empty:
        raise DataError("alpha trajectory is empty")
    epoch = int(trajectory["epoch"].max()) if epoch is None else int(epoch)
    rows = trajectory[trajectory["epoch"] == epoch]
    if rows.empty:
        raise DataError(f"alpha trajectory has no epoch {epoch}; it has {sorted(trajectory['epoch'].unique())}")
    # by text: a CSV round trip reads numeric choice names (NATS-SSS channels "8", "16") as numbers
    lookup = {(str(d), str(c)): float(p) for d, c, p in zip(rows["decision"], rows["choice"], rows["probability"])}
    matrix = np.full((space.num_decisions, space.max_choices), np.nan)
    for l, decision in enumerate(space.decisions):
        for k, choice in enumerate(decision.choices):
            key = (str(decision.name), str(choice))
            if key not in lookup:
                raise DataError(
                    f"alpha trajectory epoch {epoch} has no probability for decision {decision.name!r}, "
                    f"choice {choice!r}: it was written for another space"
                )
            matrix[l, k] = lookup[key]
    return matrix


def _shared_choices(space: SearchSpace) -> tuple[str, ...] | None:
    first = space.decisions[0].choices
    return first if all(d.choices == first for d in space.decisions) else None


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def alpha_heatmap(trajectory: pd.DataFrame, space: SearchSpace, epoch: int | None = None) -> Figure:
    """Decisions x choices heatmap of the probabilities at ``epoch`` (default: the last).

    Columns are labelled with the choice names when every decision has the same choices,
    otherwise by position with each cell naming its choice. The argmax of each row is boxed.
    """
    matrix = probability_matrix(trajectory, space, epoch)
    epoch = int(trajectory["epoch"].max()) if epoch is None else int(epoch)
    shared = _shared_choices(space)
    # cells that name their choice need room for two short lines of name and one of probability
    figure = _new_figure(1.2 + (0.9 if shared is not None else 1.15) * space.max_choices,
                         1.2 + (0.45 if shared is not None else 0.62) * space.num_decisions)
    ax = figure.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(matrix), vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    figure.colorbar(image, ax=ax, label="probability")
    ax.set_yticks(range(space.num_decisions), [d.name for d in space.decisions])
    if shared is not None:
        ax.set_xticks(range(space.max_choices), list(shared), rotation=45, ha="right")
    else:
        ax.set_xticks(range(space.max_choices), [f"choice {k}" for k in range(space.max_choices)])
    for l, decision in enumerate(space.decisions):
        best = int(np.nanargmax(matrix[l]))
        for k, choice in enumerate(decision.choices):
            p = matrix[l, k]
            text = f"{p:.2f}" if shared is not None else f"{_wrap(str(choice))}\n{p:.2f}"
            ax.text(k, l, text, ha="center", va="center", fontsize=7 if shared is not None else 6,
                    color="white" if p < 0.6 else "black")
        ax.add_patch(_box(best, l))
    ax.set_xlabel("choice")
    ax.set_ylabel("decision")
    ax.set_title(f"{space.name}: p(choice | alpha) at epoch {epoch}")
    return figure


def _wrap(name: str, width: int = 8) -> str:
    """A long choice name on two lines at its last underscore (``sep_conv_3x3`` -> ``sep_conv`` / ``3x3``)."""
    if len(name) <= width or "_" not in name:
        return name
    head, tail = name.rsplit("_", 1)
    return f"{head}\n{tail}"


def _box(x: int, y: int):
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.5)


def alpha_trajectory_figure(trajectory: pd.DataFrame, space: SearchSpace, max_columns: int = 3,
                            chosen: Sequence[int] | None = None) -> Figure:
    """One panel per decision: the probability of each choice over the epochs; ``chosen`` (the
    found architecture's choice indices) draws the chosen option thick and names it in the title."""
    probability_matrix(trajectory, space)  # validates columns and space
    trajectory = trajectory.assign(decision=trajectory["decision"].astype(str), choice=trajectory["choice"].astype(str))
    epochs = sorted(int(e) for e in trajectory["epoch"].unique())
    columns = max(1, min(max_columns, space.num_decisions))
    rows = -(-space.num_decisions // columns)
    figure = _new_figure(4.0 * columns, 2.6 * rows)
    axes = figure.subplots(rows, columns, squeeze=False, sharex=True, sharey=True)
    for l, decision in enumerate(space.decisions):
        ax = axes[l // columns][l % columns]
        part = trajectory[trajectory["decision"] == str(decision.name)]
        pick = None if chosen is None else int(chosen[l])
        for k, choice in enumerate(decision.choices):
            series = part[part["choice"] == str(choice)].set_index("epoch")["probability"].reindex(epochs)
            ax.plot(epochs, series.to_numpy(), label=f"{choice} (chosen)" if k == pick else str(choice),
                    linewidth=2.6 if k == pick else 1.0, zorder=3 if k == pick else 2)
        ax.set_title(decision.name if pick is None else f"{decision.name}: chose {decision.choices[pick]}", fontsize=9)
        ax.set_ylim(0.0, 1.0)
        ax.grid(alpha=0.3)
        if decision.size <= 10:
            ax.legend(fontsize=6, loc="upper left")
    for extra in range(space.num_decisions, rows * columns):
        axes[extra // columns][extra % columns].set_visible(False)
    figure.suptitle(f"{space.name}: p(choice | alpha) over the search epochs"
                    + ("; the found architecture's choice drawn thick" if chosen is not None else ""), fontsize=10)
    figure.supxlabel("epoch")
    figure.supylabel("probability")
    return figure


def no_trajectory_figure(method: str) -> Figure:
    """A small figure stating that ``method`` has no alpha (keeps the ``alpha_heatmap`` artifact honest)."""
    figure = _new_figure(4.0, 1.2)
    axes = figure.add_subplot(1, 1, 1)
    axes.axis("off")
    axes.text(0.5, 0.5, f"search method {method!r} has no architecture distribution (alpha)",
              ha="center", va="center", fontsize=8)
    return figure
