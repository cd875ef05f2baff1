"""Kedro with several processes: bad input before training, one MLflow run, a failing worker fails the run."""

from __future__ import annotations

import os
import shutil

import mlflow
import pandas as pd
import pytest
import torch

from tests.conftest import latest, versions
from wpnas.errors import ConfigError
from wpnas.pipelines.distributed_hooks import describe_world
from wpnas.pipelines.params import validate_parameters

GT_NODES = ["acquire_ground_truth"]


def _params(nproc=2, backend="auto", num_archs=4, device="cpu"):
    return {
        "run": {"seed": 0, "device": device, "distributed": {"nproc_per_node": nproc, "backend": backend}},
        "ground_truth": {"num_archs": num_archs},
    }


def test_bad_distributed_input_fails_before_any_node(monkeypatch):
    for key in ("WORLD_SIZE", "RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    validate_parameters(_params(), GT_NODES)
    with pytest.raises(ConfigError, match=r"run\.distributed\.nproc_per_node: a world of 5 .*ground_truth\.num_archs"):
        validate_parameters(_params(nproc=5, num_archs=4), GT_NODES)
    validate_parameters(_params(nproc=5, num_archs=4), ["train_predictor"])  # no fan-out in this run
    with pytest.raises(ConfigError, match=r"a world of 5 .*ground_truth\.num_archs"):
        validate_parameters(_params(nproc=5, num_archs=4), ["ablation_ground_truth"])  # the ablation's map too
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match=r"run\.distributed\.backend: 'nccl' needs CUDA"):
            validate_parameters(_params(backend="nccl"), GT_NODES)
    with pytest.raises(ConfigError, match=r"run\.distributed\.nproc_per_node"):
        validate_parameters(_params(nproc=0), GT_NODES)


def test_data_parallel_batches_must_split_over_the_world(monkeypatch):
    for key in ("WORLD_SIZE", "RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    params = {"run": {"device": "cpu", "distributed": {"nproc_per_node": 2}},
              "warmup": {"batch_size": 33}, "search": {"batch_size": 32, "valid_batch_size": 63}}
    with pytest.raises(ConfigError, match=r"warmup\.batch_size: 33 images per batch do not split evenly over 2"):
        validate_parameters(params, ["warmup_supernet"])
    with pytest.raises(ConfigError, match=r"search\.valid_batch_size: 63 images per batch do not split evenly"):
        validate_parameters(params, ["search_architecture"])
    params["search"] = {"batch_size": 31, "valid_batch_size": 64, "wpnas": {"update_weights": False,
                                                                            "hypernet": {"mode": "off"}}}
    validate_parameters(params, ["search_architecture"])  # no weight steps: the training batch is not split
    params["search"]["wpnas"] = {"landmark": {"enabled": True}}
    with pytest.raises(ConfigError, match=r"search\.batch_size: 31 images"):
        validate_parameters(params, ["search_architecture"])
    params["search"]["batch_size"] = 32
    validate_parameters(params, ["search_architecture"])  # the landmark term runs data parallel too
    params["search"] = {"batch_size": 31, "method": "spos_evolution"}  # evolution shards a map: any batch
    validate_parameters(params, ["search_architecture"])
    params["evaluation"] = {"batch_size": 250, "benchmark": None}
    with pytest.raises(ConfigError, match=r"evaluation\.batch_size: 250 images per batch do not split evenly over 3"):
        validate_parameters({**params, "run": {"device": "cpu", "distributed": {"nproc_per_node": 3}}},
                            ["evaluate_final_model"])


def test_torchrun_world_is_checked_against_the_work(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    with pytest.raises(ConfigError, match=r"a world of 8 "):
        validate_parameters(_params(nproc=1, num_archs=4), GT_NODES)
    assert describe_world(_params(nproc=1))["world_size"] == 8


def test_world_description_for_the_run_params(monkeypatch):
    for key in ("WORLD_SIZE", "RANK"):
        monkeypatch.delenv(key, raising=False)
    assert describe_world(_params(nproc=1)) == {"world_size": 1, "backend": "none", "launcher": "none"}
    assert describe_world(_params(nproc=2)) == {"world_size": 2, "backend": "gloo", "launcher": "elastic_launch"}


def test_map_workers_are_checked_and_described(monkeypatch):
    for key in ("WORLD_SIZE", "RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    params = {"run": {"device": "cpu", "distributed": {"map_workers_per_device": 3}}, "ground_truth": {"num_archs": 2},
              "warmup": {"batch_size": 31}}
    validate_parameters(params, GT_NODES + ["warmup_supernet"])  # 2 fine-tune workers; WarmUp: one process
    assert describe_world(params) == {"world_size": 1, "backend": "none", "launcher": "none", "map_world_size": 3}
    if not torch.cuda.is_available():
        params["run"]["distributed"]["backend"] = "nccl"
        with pytest.raises(ConfigError, match=r"'nccl' needs CUDA.*map stage starts 2 workers.*map_workers_per_device"):
            validate_parameters(params, GT_NODES)


TINY = {
    "run": {"device": "cpu", "distributed": {"nproc_per_node": 2, "backend": "gloo"}},
    "data": {"image_size": 8, "train_limit": 300},
    "space": {"options": {"nats_tss": {"C": 4}}},
    "warmup": {"epochs": 1, "batch_size": 32, "probe_archs": 0},
    "ground_truth": {"num_archs": 3, "epochs": 1, "batch_size": 32, "calib_batches": 1},
    "predictor": {"valid_size": 1, "model": {"support_size": 1}},  # (not run) its check wants few pairs
}


def _kedro(project, pipelines, params):
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project)
    try:
        with KedroSession.create(project_path=project, runtime_params=params) as session:
            session.run(pipeline_names=pipelines)
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()


def _runs():
    client = mlflow.tracking.MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("wpnas")
    return client, client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


@pytest.mark.slow
def test_kedro_run_with_two_workers_logs_one_run_and_fails_cleanly(kedro_project, monkeypatch):
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    _kedro(kedro_project, ["data_processing", "warmup", "ground_truth"], TINY)
    pairs_path = kedro_project / "data/05_model_input/arch_accuracy_pairs.csv"
    pairs = pd.read_csv(latest(pairs_path))
    assert len(pairs) == 3 and pairs["arch"].is_unique
    client, runs = _runs()
    assert len(runs) == 1  # the workers never touched MLflow
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["distributed.world_size"] == "2" and run.data.params["distributed.backend"] == "gloo"
    assert run.data.params["run.distributed.nproc_per_node"] == "2"
    history = client.get_metric_history(run.info.run_id, "ground_truth/arch_accuracy")
    assert sorted(m.step for m in history) == [1, 2, 3]

    # WarmUp ran data parallel on the 2 workers; this process alone saved the checkpoint and
    # logged its epochs (the workers, no MLflow run, logged nothing)
    from wpnas.io.checkpoints import load_checkpoint

    assert len(versions(kedro_project / "data/06_models/warmed_supernet.pt")) == 1
    warmed_path = latest(kedro_project / "data/06_models/warmed_supernet.pt")
    warmed = load_checkpoint(warmed_path)
    assert warmed["world"] == {"size": 2, "backend": "gloo"} and warmed["epoch"] == 1
    losses = client.get_metric_history(run.info.run_id, "warmup/train_loss")
    assert [m.step for m in losses] == [1] and losses[0].value == pytest.approx(warmed["history"][0]["train_loss"])

    # a worker that raises fails the stage: run FAILED, no pairs written
    warmed["state_dict"] = {k: v for k, v in list(warmed["state_dict"].items())[1:]}  # a key missing
    torch.save(warmed, warmed_path)
    before = versions(pairs_path)
    with pytest.raises(Exception, match=r"worker rank \d failed: .*state_dict|worker rank \d failed: .*[Mm]issing"):
        _kedro(kedro_project, ["ground_truth"], TINY)
    assert versions(pairs_path) == before  # no pairs written
    _, runs = _runs()
    assert len(runs) == 2 and runs[-1].info.status == "FAILED"


@pytest.mark.slow
def test_whole_kedro_run_under_torchrun_saves_once_and_logs_one_run(kedro_project):
    """torchrun starts 2 ranks of the whole session: DDP WarmUp, sharded ground truth, rank 0 writes."""
    import subprocess
    import sys
    from pathlib import Path

    params = ("run.device=cpu,data.image_size=8,data.train_limit=300,space.options.nats_tss.C=4,warmup.epochs=1,"
              "warmup.batch_size=32,warmup.probe_archs=2,warmup.probe_valid_limit=64,ground_truth.num_archs=3,"
              "ground_truth.epochs=1,ground_truth.batch_size=32,ground_truth.calib_batches=1,"
              "predictor.valid_size=1,predictor.model.support_size=1")
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        env.pop(key, None)
    done = subprocess.run(
        [str(torchrun), "--standalone", "--nproc-per-node=2", "-m", "wpnas",
         "--pipelines=data_processing,warmup,ground_truth", "--params", params],
        cwd=kedro_project, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    pairs_path = kedro_project / "data/05_model_input/arch_accuracy_pairs.csv"
    pairs = pd.read_csv(latest(pairs_path))
    assert len(pairs) == 3 and len(versions(pairs_path)) == 1  # rank 0 alone saved
    from wpnas.io.checkpoints import load_checkpoint

    warmed = load_checkpoint(latest(kedro_project / "data/06_models/warmed_supernet.pt"))
    assert warmed["epoch"] == 1
    client, runs = _runs()
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.params["distributed.world_size"] == "2"
    assert runs[0].data.params["distributed.launcher"] == "torchrun"
    assert sorted(m.step for m in client.get_metric_history(runs[0].info.run_id, "ground_truth/arch_accuracy")) == [1, 2, 3]

    # the ranks fail the ground truth (a damaged checkpoint): torchrun fails, rank 0's MLflow run
    # ends FAILED, no pairs are written
    warmed["state_dict"] = dict(list(warmed["state_dict"].items())[1:])
    torch.save(warmed, latest(kedro_project / "data/06_models/warmed_supernet.pt"))
    failed = subprocess.run(
        [str(torchrun), "--standalone", "--nproc-per-node=2", "-m", "wpnas", "--pipelines=ground_truth",
         "--params", params],
        cwd=kedro_project, env=env, capture_output=True, text=True, timeout=600,
    )
    assert failed.returncode != 0
    assert len(versions(pairs_path)) == 1  # no pairs written
    _, runs = _runs()
    assert len(runs) == 2 and runs[-1].info.status == "FAILED"


@pytest.mark.slow
def test_search_and_evaluation_nodes_fan_out_and_log_in_this_process(tmp_path, monkeypatch, mlflow_store_template):
    """nproc_per_node = 2: the nodes start workers, get rank 0's result, and log its epochs here."""
    from tests.search.conftest import search_cfg, warmed
    from wpnas.config import to_dict
    from wpnas.data.sources import DataConfig, build_image_splits
    from wpnas.pipelines.evaluation.nodes import evaluate_final_model as evaluation_node
    from wpnas.pipelines.search.nodes import search_architecture as search_node

    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    splits = build_image_splits(DataConfig(source="digits", image_size=8))
    _, warmed_checkpoint = warmed("nats_tss", splits)
    run = {"device": "cpu", "seed": 1, "distributed": {"nproc_per_node": 2, "backend": "gloo"}}
    space = {"name": "nats_tss", "options": {"nats_tss": {"C": 4, "N": 1}}}
    search = to_dict(search_cfg(epochs=1, steps_per_epoch=2))
    evaluation = {"epochs": 1, "batch_size": 32, "valid_every": 0, "benchmark": None, "test_limit": 64,
                  "augment": {"crop_padding": 1, "flip": False, "cutout": 0}}
    shutil.copy(mlflow_store_template, tmp_path / "mlflow.db")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("fan_out")  # not the experiment id an earlier test left active in this process
    with mlflow.start_run() as active:
        checkpoint, _, _, genotype = search_node(warmed_checkpoint, None, None, splits, run, space, search)
        model, export, metrics = evaluation_node(genotype, splits, run, space, evaluation)
    assert checkpoint["world"] == {"size": 2, "backend": "gloo"}
    assert export.module is not None and model["arch"] == genotype["arch"]
    client = mlflow.tracking.MlflowClient()
    logged = client.get_run(active.info.run_id).data.metrics
    assert logged["search/train_loss"] == pytest.approx(checkpoint["history"][0]["train_loss"])
    assert logged["evaluation/train_loss"] == pytest.approx(model["history"][0]["train_loss"])
    assert logged["evaluation/test_accuracy"] == pytest.approx(metrics["test_accuracy"])


@pytest.mark.slow
def test_map_workers_share_the_fine_tunes_and_repeated_evaluations(monkeypatch):
    """map_workers_per_device = 2, nproc_per_node = 1: the ground-truth and repeated-evaluation maps
    start 2 workers and give what one process gives; one evaluation run stays in this process."""
    from tests.search.conftest import warmed
    from tests.train.test_scratch import genotype_of
    from wpnas import distributed
    from wpnas.spaces import get_space
    from wpnas.data.sources import DataConfig, build_image_splits
    from wpnas.pipelines.evaluation.nodes import evaluate_final_model as evaluation_node
    from wpnas.pipelines.ground_truth.nodes import acquire_ground_truth as acquire_pairs

    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    launched = []
    launch = distributed.launch

    def counted(fn, args, cfg, **kwargs):
        launched.append(cfg.nproc_per_node)
        return launch(fn, args, cfg, **kwargs)

    monkeypatch.setattr(distributed, "launch", counted)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # this process on 2 threads, each of 2 workers on 1: same kernels on digits this small
    try:
        splits = build_image_splits(DataConfig(source="digits", image_size=8))
        _, warmed_checkpoint = warmed("nats_tss", splits)
        space = {"name": "nats_tss", "options": {"nats_tss": {"C": 4, "N": 1}}}
        ground_truth = {"num_archs": 3, "epochs": 1, "batch_size": 32, "calib_batches": 1}
        evaluation = {"epochs": 1, "batch_size": 32, "valid_every": 0, "benchmark": None, "test_limit": 64,
                      "augment": {"crop_padding": 1, "flip": False, "cutout": 0}, "repeats": 2, "export": "none"}
        alone = {"device": "cpu", "seed": 1}
        shared = {**alone, "distributed": {"map_workers_per_device": 2}}
        cell = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
        genotype = genotype_of(get_space("nats_tss", C=4, N=1), cell)
        one, _ = acquire_pairs(warmed_checkpoint, splits, alone, space, ground_truth)
        _, _, one_eval = evaluation_node(genotype, splits, alone, space, evaluation)
        assert launched == []
        two, _ = acquire_pairs(warmed_checkpoint, splits, shared, space, ground_truth)
        _, _, two_eval = evaluation_node(genotype, splits, shared, space, evaluation)
        assert launched == [2, 2]
        evaluation_node(genotype, splits, shared, space, {**evaluation, "repeats": 1})  # one run: data parallel
        assert launched == [2, 2]
    finally:
        torch.set_num_threads(threads)
    same = ["arch", "accuracy", "flops_m", "params_m", "source"]
    pd.testing.assert_frame_equal(two[same], one[same], check_exact=False, rtol=1e-5)
    assert [r["seed"] for r in two_eval["runs"]] == [1, 2]
    for a, b in zip(two_eval["runs"], one_eval["runs"]):
        assert a["test_accuracy"] == pytest.approx(b["test_accuracy"], abs=100 / 64 + 1e-9)  # one image of 64
        assert a["test_loss"] == pytest.approx(b["test_loss"], rel=1e-4)
