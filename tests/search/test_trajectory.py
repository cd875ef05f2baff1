"""The alpha_trajectory table and its figures."""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from wpnas.errors import DataError
from wpnas.search.distribution import ArchDistribution
from wpnas.search.trajectory import (
    COLUMNS,
    alpha_heatmap,
    alpha_trajectory_figure,
    probability_matrix,
    trajectory_table,
)
from wpnas.spaces import get_space

from .conftest import ToySpace


def _trajectory(space, epochs: int = 3):
    dist = ArchDistribution(space)
    snapshots = [[p.tolist() for p in dist.probs()]]
    gen = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        with torch.no_grad():
            dist.alpha.add_(torch.randn(dist.alpha.shape, generator=gen))
        snapshots.append([p.tolist() for p in dist.probs()])
    return dist, trajectory_table(space, snapshots)


@pytest.mark.parametrize("space", [ToySpace(), get_space("nats_tss", C=4, N=1)], ids=lambda s: s.name)
def test_table_rows_and_matrix(space):
    dist, table = _trajectory(space)
    assert list(table.columns) == list(COLUMNS)
    assert len(table) == 4 * sum(space.num_choices)
    assert table["epoch"].tolist()[: space.num_choices[0]] == [0] * space.num_choices[0]
    matrix = probability_matrix(table, space)
    expected = dist.prob_matrix().double().numpy()
    valid = dist.mask.numpy()
    np.testing.assert_allclose(matrix[valid], expected[valid], rtol=1e-6)
    assert np.isnan(matrix[~valid]).all()
    start = probability_matrix(table, space, epoch=0)
    np.testing.assert_allclose(np.nansum(start, axis=1), 1.0)


def test_table_rejects_mismatched_snapshots():
    space = ToySpace()
    with pytest.raises(DataError, match="decisions"):
        trajectory_table(space, [[[1.0]]])
    with pytest.raises(DataError, match="probabilities for"):
        trajectory_table(space, [[[0.5, 0.5], [1.0], [1.0, 0, 0], [1.0], [1, 0, 0, 0]]])
    with pytest.raises(DataError, match="epochs"):
        trajectory_table(space, [], epochs=[1])


def test_matrix_rejects_another_space_or_epoch():
    _, table = _trajectory(ToySpace())
    with pytest.raises(DataError, match="another space"):
        probability_matrix(table, get_space("nats_tss", C=4, N=1))
    with pytest.raises(DataError, match="no epoch 9"):
        probability_matrix(table, ToySpace(), epoch=9)
    with pytest.raises(DataError, match="lacks column"):
        probability_matrix(table.drop(columns=["choice"]), ToySpace())


@pytest.mark.parametrize("space", [ToySpace(), get_space("nats_tss", C=4, N=1)], ids=lambda s: s.name)
def test_figures_render_without_pyplot(space):
    _, table = _trajectory(space)
    open_before = plt.get_fignums()
    heat = alpha_heatmap(table, space)
    lines = alpha_trajectory_figure(table, space)
    for figure in (heat, lines):
        assert isinstance(figure, Figure)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        assert buffer.getvalue()[:4] == b"\x89PNG"
    assert plt.get_fignums() == open_before  # nothing registered with pyplot, nothing to leak
    visible = [ax for ax in lines.axes if ax.get_visible() and ax.get_title()]
    assert [ax.get_title() for ax in visible] == [d.name for d in space.decisions]
    heat_axes = heat.axes[0]
    assert [t.get_text() for t in heat_axes.get_yticklabels()] == [d.name for d in space.decisions]
