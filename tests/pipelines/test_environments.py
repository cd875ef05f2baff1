"""Every Kedro environment's parameters parse and pass the up-front checks of every stage."""

from __future__ import annotations

import pytest
from kedro.config import OmegaConfigLoader

from tests.conftest import REPO, SHARED_DATA
from wpnas.pipelines.params import validate_parameters
from wpnas.pipelines.registry import all_pipelines
from wpnas.settings import CONFIG_LOADER_ARGS


@pytest.mark.parametrize("env", ["local", "cifar10", "paper"])
def test_environment_parameters_are_valid(env, monkeypatch):
    loader = OmegaConfigLoader(conf_source=str(REPO / "conf"), **{**CONFIG_LOADER_ARGS, "default_run_env": env})
    params = loader["parameters"]
    text = repr(params)
    if "../shared/data" in text and not SHARED_DATA.is_dir():
        pytest.skip("the environment points at ../shared/data, which is absent")
    monkeypatch.chdir(REPO)  # relative table paths are relative to the project root, as in `kedro run`
    nodes = {n.name for p in all_pipelines().values() for n in p.nodes}
    nodes -= {"prepare_image_splits", "predictor_table2"}  # those check data that is downloaded on use
    validate_parameters(params, nodes)
