"""Lineage: every catalog entry has a kedro-viz layer, the layers have an order, every entry is
versioned, and `kedro viz build` works offline."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def _catalog() -> dict:
    return yaml.safe_load((REPO / "conf" / "base" / "catalog.yml").read_text())


def layer_edges(catalog: dict, pipelines) -> set[tuple[str, str]]:
    """(layer of a node input, layer of its output) over every node of every pipeline."""
    layer = {name: entry["metadata"]["kedro-viz"]["layer"] for name, entry in catalog.items()}
    edges = set()
    for pipeline in pipelines:
        for node in pipeline.nodes:
            for source in node.inputs:
                for target in node.outputs:
                    if source in layer and target in layer and layer[source] != layer[target]:
                        edges.add((layer[source], layer[target]))
    return edges


def layer_cycle(edges: set[tuple[str, str]]) -> list[str] | None:
    """A cycle among the layers (kedro-viz then disables its layer view), or None."""
    from graphlib import CycleError, TopologicalSorter

    parents: dict[str, set[str]] = {}
    for source, target in edges:
        parents.setdefault(target, set()).add(source)
        parents.setdefault(source, set())
    try:
        list(TopologicalSorter(parents).static_order())
    except CycleError as err:
        return err.args[1]
    return None


def test_layer_check_finds_the_old_cycle():
    catalog = {"w": {"metadata": {"kedro-viz": {"layer": "models"}}},
               "pairs": {"metadata": {"kedro-viz": {"layer": "model_input"}}},
               "p": {"metadata": {"kedro-viz": {"layer": "models"}}}}

    class Node:
        def __init__(self, inputs, outputs):
            self.inputs, self.outputs = inputs, outputs

    class Pipe:
        nodes = [Node(["w", "params:x"], ["pairs"]), Node(["pairs"], ["p"])]

    assert set(layer_cycle(layer_edges(catalog, [Pipe]))) == {"models", "model_input"}


def test_layers_have_an_order_across_all_pipelines():
    """kedro-viz shows layers only when some order of them makes every edge go forward."""
    from wpnas.pipelines.registry import all_pipelines

    edges = layer_edges(_catalog(), all_pipelines().values())
    assert ("warmed_models", "model_input") in edges and ("model_input", "models") in edges
    assert ("trained_models", "reporting") in edges  # else kedro-viz may draw the trained model after the report
    assert layer_cycle(edges) is None, f"kedro-viz layers form a cycle: {layer_cycle(edges)}"


def test_every_catalog_entry_is_versioned():
    """A run never overwrites another run's artifacts (data/<layer>/<file>/<version>/<file>)."""
    unversioned = [name for name, entry in _catalog().items() if entry.get("versioned") is not True]
    assert not unversioned, f"catalog entries without versioned: true: {unversioned}"


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
    layers = json.loads(api.read_text()).get("layers")
    assert layers and {"primary", "warmed_models", "model_input", "models"} <= set(layers), layers
    assert layers.index("warmed_models") < layers.index("model_input") < layers.index("models")
    assert layers.index("models") < layers.index("model_output") < layers.index("trained_models") \
        < layers.index("reporting"), layers
    assert "circular dependency" not in done.stdout + done.stderr
