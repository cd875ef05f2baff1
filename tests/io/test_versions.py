"""Old artifact versions, listed and removed on request (``kedro prune``)."""

from __future__ import annotations

import pytest

from wpnas.errors import ConfigError
from wpnas.io.versions import StaleVersion, remove_versions, stale_versions

V = ["2026-11-28T10.00.00.000Z", "2026-11-28T11.00.00.000Z", "2026-11-29T09.30.00.000Z"]


def _artifact(root, name, versions):
    artifact = root / name
    for version in versions:
        (artifact / version).mkdir(parents=True)
        (artifact / version / name).write_bytes(b"x" * 1000)
    return artifact


def test_only_the_oldest_version_folders_beyond_keep_are_listed_and_removed(tmp_path):
    model = _artifact(tmp_path, "warmed_supernet.pt", V)
    table = _artifact(tmp_path, "pairs.csv", V[:1])
    (model / "notes").mkdir()  # not a version: never touched
    (model / "2026-11-27T00.00.00.000Z").write_text("a file named like a version")  # not a folder
    missing = tmp_path / "never_saved.json"
    stale = stale_versions([model, table, missing, model], keep=1)
    assert [(s.artifact.name, s.version) for s in stale] == [("warmed_supernet.pt", V[0]),
                                                            ("warmed_supernet.pt", V[1])]
    assert all(s.size_bytes == 1000 for s in stale)
    assert stale_versions([model], keep=3) == []
    assert remove_versions(stale) == 2000
    assert sorted(p.name for p in model.iterdir()) == ["2026-11-27T00.00.00.000Z", V[2], "notes"]
    assert (table / V[0] / "pairs.csv").is_file()


@pytest.mark.parametrize("keep", [0, -1, 1.5, True])
def test_keep_must_leave_at_least_one_version(tmp_path, keep):
    with pytest.raises(ConfigError, match=r"--keep .*expected an integer >= 1"):
        stale_versions([tmp_path], keep=keep)


def test_a_folder_that_is_not_a_version_is_never_removed(tmp_path):
    (tmp_path / "data").mkdir()
    with pytest.raises(ConfigError, match="not a version folder"):
        remove_versions([StaleVersion(tmp_path, "data", 0)])
    assert (tmp_path / "data").is_dir()
