"""Every Kedro environment's parameters parse and pass the up-front checks of every stage."""

from __future__ import annotations

import pytest
from kedro.config import OmegaConfigLoader

from tests.conftest import REPO, SHARED_DATA
from wpnas.pipelines.params import validate_parameters
from wpnas.pipelines.registry import all_pipelines
from wpnas.settings import CONFIG_LOADER_ARGS


@pytest.mark.parametrize("env", ["local", "cifar10", "paper", "paper_darts", "paper_mobilenet"])
def test_environment_parameters_are_valid(env, monkeypatch):
    loader = OmegaConfigLoader(conf_source=str(REPO / "conf"), **{**CONFIG_LOADER_ARGS, "default_run_env": env})
    params = loader["parameters"]
    text = repr(params)
    if "../shared/data" in text and not SHARED_DATA.is_dir():
        pytest.skip("the environment points at ../shared/data, which is absent")
    monkeypatch.chdir(REPO)  # relative table paths are relative to the project root, as in `kedro run`
    nodes = {n.name for p in all_pipelines().values() for n in p.nodes}
    nodes -= {"prepare_image_splits", "predictor_table2"}  # those check data that is downloaded on use
    folder = (params.get("evaluation", {}).get("data") or {}).get("root")
    if folder and not (REPO / folder).is_dir():  # ImageNet is not here: the evaluation says so up front
        from wpnas.errors import DataError

        with pytest.raises(DataError, match=f"{folder}/train' is not a folder"):
            validate_parameters(params, {"evaluate_final_model"})
        nodes.discard("evaluate_final_model")
    validate_parameters(params, nodes)
