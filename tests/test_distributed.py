"""wpnas.distributed: backend and world checks, and 2 Gloo workers started by the elastic launcher."""

from __future__ import annotations

import os

import pytest
import torch

from wpnas import distributed
from wpnas.config import DistributedConfig, RunConfig, from_dict
from wpnas.errors import ConfigError, WorkerError


def test_run_distributed_settings_are_parsed_and_checked():
    cfg = from_dict(RunConfig, {"seed": 1, "distributed": {"nproc_per_node": 2, "backend": "gloo"}}, where="run")
    assert cfg.distributed == DistributedConfig(nproc_per_node=2, backend="gloo")
    assert from_dict(RunConfig, {}, where="run").distributed.nproc_per_node == 1
    with pytest.raises(ConfigError, match=r"run\.distributed\.nproc_per_node"):
        from_dict(RunConfig, {"distributed": {"nproc_per_node": 0}}, where="run")
    with pytest.raises(ConfigError, match=r"run\.distributed\.backend"):
        from_dict(RunConfig, {"distributed": {"backend": "mpi"}}, where="run")
    with pytest.raises(ConfigError, match=r"run\.distributed.*unknown"):
        from_dict(RunConfig, {"distributed": {"nprocs": 2}}, where="run")


def test_map_workers_per_device_sizes_the_map_stages_only():
    from wpnas.config import MAP_WORKERS_PER_CUDA
    from wpnas.pipelines.workers import fans_out, stage_workers

    cfg = DistributedConfig(map_workers_per_device=3)
    assert cfg.map_world("cpu", 200) == 3 and cfg.map_world("cpu", 2) == 2  # never more workers than runs
    assert DistributedConfig(nproc_per_node=2, map_workers_per_device=3).map_world("cpu", 200) == 6
    assert DistributedConfig(nproc_per_node=4, map_workers_per_device=3).map_world("cpu", 2) == 4  # check_work refuses
    auto = DistributedConfig(map_workers_per_device="auto")
    assert auto.map_world("cpu", 200) == 1 and auto.map_world(torch.device("cuda", 0), 200) == MAP_WORKERS_PER_CUDA
    assert from_dict(RunConfig, {}, where="run").distributed.map_workers_per_device == 1
    run = from_dict(RunConfig, {"device": "cpu", "distributed": {"map_workers_per_device": 2}}, where="run")
    assert not fans_out(run) and stage_workers(run) == 1  # data-parallel stages: nproc_per_node
    assert fans_out(run, 5) and stage_workers(run, 5) == 2 and not fans_out(run, 1)
    for bad in (0, -1, 1.5, True, "many"):
        with pytest.raises(ConfigError, match=rf"run\.distributed\.map_workers_per_device: '?{bad}"):
            from_dict(RunConfig, {"distributed": {"map_workers_per_device": bad}}, where="run")


def test_backend_resolution_refuses_nccl_without_gpus():
    assert distributed.resolve_backend("auto", "cpu", 2) == "gloo"
    assert distributed.resolve_backend("gloo", "cpu", 8) == "gloo"
    with pytest.raises(ConfigError, match=r"run\.distributed\.backend: 'nccl' needs CUDA"):
        distributed.resolve_backend("nccl", "cpu", 2)
    with pytest.raises(ConfigError, match=r"run\.distributed\.backend: 'nccl' needs CUDA"):
        distributed.launch(_squares, (4,), {"nproc_per_node": 2, "backend": "nccl"}, device="cpu")


def test_world_larger_than_the_work_is_refused():
    distributed.check_work(3, 3, "architectures")
    with pytest.raises(ConfigError, match=r"run\.distributed\.nproc_per_node: a world of 4 .* \(3 architectures\)"):
        distributed.check_work(3, 4, "architectures")


def test_one_process_is_a_plain_loop():
    assert not distributed.current().active and distributed.current().is_main
    assert distributed.map_items(lambda i, x: (i, x * 2), ["a", "b"]) == [(0, "aa"), (1, "bb")]
    assert list(distributed.share(5)) == [0, 1, 2, 3, 4]
    assert distributed.check_consistent({"a": 1}) == distributed.fingerprint({"a": 1})
    assert distributed.fingerprint({"a": 1, "b": 2}) == distributed.fingerprint({"b": 2, "a": 1})
    assert distributed.fingerprint({"a": 1}) != distributed.fingerprint({"a": 2})


# --- workers (module level: spawned processes import them) ---------------------------------


def _squares(n: int, mode: str = "ok"):
    world = distributed.current()
    assert world.size == 2 and world.backend == "gloo" and torch.get_num_threads() == 1
    from torch._inductor import config as inductor

    assert inductor.compile_threads == 1  # compile pools sized to the worker's share of the cores
    if mode == "exit" and world.rank == 1:
        os._exit(3)  # a hard crash: no Python error, the launcher must still name the rank
    if mode == "params":
        distributed.check_consistent({"optim.lr": 0.1 * (1 + world.rank)}, "parameters")

    def square(i: int, x: int) -> tuple[int, int]:
        if mode == "raise" and i == 3:
            raise ValueError(f"cannot square item {i}")
        return x * x, world.rank

    return distributed.map_items(square, list(range(n)))


def test_two_workers_share_the_map_and_gather_in_order():
    result = distributed.launch(_squares, (5,), {"nproc_per_node": 2, "backend": "gloo"})
    assert result == [(0, 0), (1, 1), (4, 0), (9, 1), (16, 0)]  # item i ran on rank i % 2


@pytest.mark.parametrize(
    "mode, rank, message",
    [
        ("raise", 1, r"worker rank 1 failed: ValueError: cannot square item 3"),
        pytest.param("exit", 1, r"worker rank 1 failed: exit code 3", marks=pytest.mark.slow),
        pytest.param("params", None, r"ConfigError: run\.distributed: the parameters differ across ranks .* "
                     r"rank\(s\) \[1\]", marks=pytest.mark.slow),
    ],
)
def test_a_failing_worker_fails_the_launch_with_its_rank(mode, rank, message):
    with pytest.raises(WorkerError, match=message) as info:
        distributed.launch(_squares, (5, mode), {"nproc_per_node": 2})
    if rank is not None:
        assert info.value.rank == rank
