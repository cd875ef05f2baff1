"""wpnas.distributed: backend and world checks, and 2 Gloo workers started by the elastic launcher."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

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
    if mode == "stop" and world.rank == 1:
        os.kill(os.getpid(), signal.SIGSTOP)  # rank 0 is left waiting in the gather below
    if mode == "listen":  # every rank here, so none waits for the other in a collective
        found = _listening(os.getppid()) if world.rank == 0 else None
        distributed.barrier()
        return found
    if mode == "sleep":
        time.sleep(120)
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


def _listening(pid: int) -> list[str]:
    """The local addresses process ``pid`` listens on (TCP, from /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # state LISTEN, a socket of that process
                    address, port = fields[1].split(":")
                    found.append(f"{table}:{address}:{int(port, 16)}")
    return found


@pytest.mark.slow
def test_a_single_node_launch_listens_on_the_loopback_only():
    # Before: the c10d rendezvous store (and the launcher's store for the workers) listened on
    # every interface (0.0.0.0 / ::) for a run that never leaves the machine.
    listening = distributed.launch(_squares, (5, "listen"), {"nproc_per_node": 2, "backend": "gloo"})
    assert listening, "the launching process listens on nothing?"
    assert all(entry.startswith("tcp:0100007F:") for entry in listening), listening  # 127.0.0.1 only


@pytest.mark.slow
def test_a_stopped_rank_is_the_rank_named():
    # Before: rank 0, left waiting for the stopped rank 1 until the timeout, was named.
    with pytest.raises(WorkerError, match=r"worker rank 1 failed: stopped responding: no heartbeat for \d+ s "
                                          r"\(stopped with SIGSTOP.*rank 0 gave up waiting for it") as info:
        distributed.launch(_squares, (5, "stop"), {"nproc_per_node": 2, "backend": "gloo", "timeout_s": 6})
    assert info.value.rank == 1


_PARENT = textwrap.dedent("""
    import signal, sys
    from tests.test_distributed import _squares
    from wpnas import distributed

    class Guarded(KeyboardInterrupt):
        pass

    def guard(signum, frame):
        print("guard got", signal.Signals(signum).name, flush=True)
        raise Guarded()

    signal.signal(signal.SIGTERM, guard)
    signal.signal(signal.SIGINT, guard)
    print("launching", flush=True)
    try:
        distributed.launch(_squares, (5, "sleep"), {"nproc_per_node": 2, "backend": "gloo"})
    except Guarded:
        print("interrupted; handlers back:", signal.getsignal(signal.SIGTERM) is guard,
              signal.getsignal(signal.SIGINT) is guard, flush=True)
        sys.exit(7)
    except Exception as err:
        print("failed with", type(err).__name__, err, flush=True)
        sys.exit(1)
""")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_parent_of_a_launch_reaches_its_own_handler(signum):
    # Before: the launcher replaced the handlers and raised its SignalException (an Exception), so
    # the run guard never saw the signal and the MLflow run ended FAILED; the handlers stayed replaced.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    child = subprocess.Popen([sys.executable, "-c", _PARENT], cwd=root, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not _worker_pids(child.pid):
            time.sleep(0.2)
        time.sleep(2.0)  # the workers are in the stage
        child.send_signal(signum)
        out = child.communicate(timeout=90)[0]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 7, out[-3000:]
    assert f"guard got {signal.Signals(signum).name}" in out
    assert "interrupted; handlers back: True True" in out


def _worker_pids(pid: int) -> list[int]:
    """Child processes of ``pid`` that are spawned Python workers."""
    try:
        out = subprocess.run(["ps", "-ww", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True,
                             text=True).stdout
    except OSError:
        return []
    return [int(line.split()[0]) for line in out.splitlines() if "multiprocessing" in line or "spawn" in line]
