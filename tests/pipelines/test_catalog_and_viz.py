"""Lineage: every catalog entry has a kedro-viz layer, and `kedro viz build` works offline."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def test_every_catalog_entry_has_a_layer():
    catalog = yaml.safe_load((REPO / "conf" / "base" / "catalog.yml").read_text())
    missing = [name for name, entry in catalog.items()
               if not (entry.get("metadata") or {}).get("kedro-viz", {}).get("layer")]
    assert not missing, f"catalog entries without a kedro-viz layer: {missing}"


def test_every_node_output_is_cataloged():
    """Nothing a pipeline produces is a throw-away MemoryDataset (torch objects would be copied)."""
    from wpnas.pipelines.registry import all_pipelines

    catalog = yaml.safe_load((REPO / "conf" / "base" / "catalog.yml").read_text())
    outputs = {o for p in all_pipelines().values() for n in p.nodes for o in n.outputs}
    assert outputs - set(catalog) == set()


@pytest.mark.slow
def test_kedro_viz_build_offline(kedro_project):
    kedro = Path(sys.executable).with_name("kedro")
    env = dict(os.environ, KEDRO_DISABLE_TELEMETRY="true")
    done = subprocess.run([str(kedro), "viz", "build"], cwd=kedro_project, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (kedro_project / "build" / "index.html").is_file()
    api = kedro_project / "build" / "api" / "main"
    assert api.is_file() and "wpnas_search" in api.read_text()
