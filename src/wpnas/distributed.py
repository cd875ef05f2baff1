"""torch.distributed for wpnas: the world a process runs in, maps sharded over ranks, launching.

Two ways to get several processes, one code path:

- **Inside one process** (a Kedro node, a notebook) with ``run.distributed.nproc_per_node >
  1``: :func:`launch` starts that many workers on this machine through torch's elastic
  launcher (``torch.distributed.launcher.api.elastic_launch``, the engine behind
  ``torchrun``), each worker joins the process group and runs the given function; the
  caller gets rank 0's return value. Only the caller (which is no rank) writes artifacts.
- **Under an external ``torchrun``** (one or several machines): every process already is a
  rank; :func:`init_from_env` joins the group the launcher described in the environment.

Work that is a map over items (one fine-tune per architecture) goes through
:func:`map_items`: rank ``r`` of ``W`` runs items ``r, r + W, ...``, the results are
all-gathered and put back in item order, so every rank returns the same list a single
process computes, provided each item's work depends only on (seed, item index). A failing
item does not leave the other ranks waiting: every rank reaches the gather, and every rank
raises :class:`~wpnas.errors.WorkerError` naming the rank and error of the first failure.

This module sits with the leaves (it imports numpy, torch, ``config`` and ``errors`` only).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, record

from wpnas.config import DistributedConfig, from_dict
from wpnas.errors import ConfigError, WorkerError

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class World:
    """Where this process stands: its rank among ``size`` processes and the backend joining them."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes artifacts and talks to MLflow."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1


def current() -> World:
    """The world of this process (a world of one when no process group is initialised)."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(
        rank=dist.get_rank(),
        size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        local_size=int(os.environ.get("LOCAL_WORLD_SIZE", 1)),
        backend=str(dist.get_backend()),
    )


def launched_by_torchrun() -> bool:
    """True in a process started by ``torchrun`` (or the elastic launcher) with more than one rank."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def env_world_size() -> int:
    """The world size the launcher announced in the environment (1 outside one)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def resolve_backend(backend: str, device: torch.device | str, local_size: int) -> str:
    """``gloo`` or ``nccl`` for ``backend`` ('auto', 'gloo', 'nccl') on ``device`` with ``local_size`` local ranks.

    NCCL needs CUDA and one device per rank (it refuses two ranks on one GPU); 'auto' picks
    it only then, and Gloo otherwise (several workers sharing one GPU, or the CPU).
    """
    device = torch.device(device)
    if backend not in ("auto", "gloo", "nccl"):
        raise ConfigError(f"run.distributed.backend: {backend!r} is not one of ['auto', 'gloo', 'nccl']")
    gpus = torch.cuda.device_count() if device.type == "cuda" and torch.cuda.is_available() else 0
    if backend == "nccl":
        if device.type != "cuda" or gpus == 0:
            raise ConfigError(
                f"run.distributed.backend: 'nccl' needs CUDA devices, but this run trains on {device.type!r}; "
                "use 'gloo' (or 'auto') on the CPU"
            )
        if not dist.is_nccl_available():
            raise ConfigError("run.distributed.backend: 'nccl' is not available in this torch build; use 'gloo'")
        if local_size > gpus:
            raise ConfigError(
                f"run.distributed.backend: 'nccl' needs one CUDA device per rank, but {local_size} local ranks "
                f"share {gpus} device(s); use 'gloo' (or 'auto') for several workers per GPU"
            )
        return "nccl"
    if backend == "auto" and gpus and local_size <= gpus and dist.is_nccl_available():
        return "nccl"
    return "gloo"


def check_work(num_items: int, world_size: int, what: str) -> None:
    """Refuse a world with more ranks than items to share (a rank with nothing to do is a mistake)."""
    if world_size > num_items:
        raise ConfigError(
            f"run.distributed.nproc_per_node: a world of {world_size} processes is larger than the work "
            f"({num_items} {what}); use at most {num_items} processes"
        )


def fingerprint(value: Any) -> str:
    """A short hash of a JSON-able value (dict keys sorted; other objects by ``repr``)."""
    text = json.dumps(value, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_consistent(value: Any, what: str = "parameters") -> str:
    """Compare a hash of ``value`` across ranks; raise ``ConfigError`` naming the ranks that differ.

    Called at the start, before any training, so ranks started with different parameters
    (a stale config on one machine) fail in seconds. Returns the hash.
    """
    digest = fingerprint(value)
    world = current()
    if not world.active:
        return digest
    digests: list[Any] = [None] * world.size
    dist.all_gather_object(digests, digest)
    if len(set(digests)) > 1:
        differing = [r for r, d in enumerate(digests) if d != digests[0]]
        raise ConfigError(
            f"run.distributed: the {what} differ across ranks (hash {digests[0]} on rank 0, "
            f"different on rank(s) {differing}); start every rank with the same configuration"
        )
    return digest


def init_from_env(cfg: DistributedConfig | dict | None, device: torch.device | str) -> World:
    """Join the process group the launcher described (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``...).

    A no-op returning a world of one outside a launcher; the current world when a group is
    already initialised.
    """
    cfg = from_dict(DistributedConfig, cfg, where="run.distributed")
    if dist.is_available() and dist.is_initialized():
        return current()
    if not launched_by_torchrun():
        return World()
    if not dist.is_available():
        raise ConfigError("run.distributed: this torch build has no torch.distributed")
    local_size = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    backend = resolve_backend(cfg.backend, device, local_size)
    device = torch.device(device)
    if backend == "nccl":
        torch.cuda.set_device(device if device.index is not None else int(os.environ.get("LOCAL_RANK", 0)))
    timeout = datetime.timedelta(seconds=cfg.timeout_s)
    store = _launcher_store(timeout)
    if store is None:
        dist.init_process_group(backend=backend, timeout=timeout)
    else:  # launched by :func:`launch`: its loopback store, not a server of our own on every interface
        dist.init_process_group(backend=backend, timeout=timeout, store=store, rank=int(os.environ["RANK"]),
                                world_size=int(os.environ["WORLD_SIZE"]))
    world = current()
    logger.info("distributed: rank %d of %d (local %d of %d), backend %s",
                world.rank, world.size, world.local_rank, world.local_size, backend)
    return world


#: ``host:port`` of the store :func:`launch` hosts on the loopback for its workers.
STORE_ENV = "WPNAS_STORE"


def _store_client(timeout: datetime.timedelta) -> dist.TCPStore | None:
    address = os.environ.get(STORE_ENV)
    if not address:
        return None
    host, _, port = address.rpartition(":")
    return dist.TCPStore(host, int(port), is_master=False, timeout=timeout)


def _launcher_store(timeout: datetime.timedelta) -> dist.Store | None:
    """This launch's loopback store (keys under the run id), or None outside :func:`launch`."""
    client = _store_client(timeout)
    if client is None:
        return None
    return dist.PrefixStore(f"wpnas/{os.environ.get('TORCHELASTIC_RUN_ID', 'run')}/pg/", client)


def shutdown() -> None:
    """Leave the process group (nothing outside one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if current().active:
        dist.barrier()


def share(num_items: int, world: World | None = None) -> range:
    """The item indices this rank runs: ``rank, rank + size, ...`` (balanced within one item)."""
    world = world or current()
    return range(world.rank, num_items, world.size)


def groups_of(items: Sequence[T], size: int) -> list[list[T]]:
    """``items`` cut into consecutive groups of ``size`` (the last may be shorter)."""
    return [list(items[i:i + size]) for i in range(0, len(items), max(int(size), 1))]


def map_groups(fn: Callable[[list[T]], list[R]], items: Sequence[T], size: int) -> list[R]:
    """``fn`` over :func:`groups_of` ``items`` (one result per item), sharded over the ranks
    as :func:`map_items` shards; every rank returns the flat list in item order."""
    groups = groups_of(items, size)

    def run(_: int, group: list[T]) -> list[R]:
        results = list(fn(group))
        if len(results) != len(group):
            raise ValueError(f"map_groups: {len(results)} results for a group of {len(group)} items")
        return results

    return [value for part in map_items(run, groups) for value in part]


def map_items(fn: Callable[[int, T], R], items: Sequence[T]) -> list[R]:
    """``[fn(i, item) for i, item in enumerate(items)]``, sharded over the ranks of the current world.

    Every rank returns the full list in item order. ``fn`` must depend only on its
    arguments (and state equal on every rank) for the result to equal one process's.
    Ranks beyond the number of items idle (call :func:`check_work` first to refuse that).
    """
    world = current()
    if not world.active:
        return [fn(i, item) for i, item in enumerate(items)]
    mine: list[tuple[int, R]] = []
    failure: tuple[int, str] | None = None
    error: BaseException | None = None
    try:
        for i in share(len(items), world):
            mine.append((i, fn(i, items[i])))
    except Exception as err:  # every rank must reach the gather below, whatever happens here
        error = err
        failure = (world.rank, f"{type(err).__name__}: {err}")
        logger.error("rank %d failed on item %d:\n%s", world.rank, len(mine) * world.size + world.rank,
                     traceback.format_exc())
    gathered: list[Any] = [None] * world.size
    dist.all_gather_object(gathered, (failure, mine if failure is None else []))
    failures = [f for f, _ in gathered if f is not None]
    if failures:
        rank, message = min(failures)
        raise WorkerError(rank, message) from error
    results: list[Any] = [None] * len(items)
    for _, part in gathered:
        for i, value in part:
            results[i] = value
    return results


class ShardedBatches:
    """This rank's slice of every batch of ``batches`` (each rank iterates the same global batches).

    With data parallelism each rank draws the *same* seeded global batch (same order, same
    augmentation) and keeps its contiguous ``1/size`` share, so the ranks together see
    exactly the batch one process would. Batches must split evenly (see ``check_divisible``).
    """

    def __init__(self, batches: Any, world: World | None = None) -> None:
        self.batches = batches
        self.world = world or current()

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        size, rank = self.world.size, self.world.rank
        for x, y in self.batches:
            yield x.tensor_split(size)[rank], y.tensor_split(size)[rank]


def data_parallel(module: torch.nn.Module, device: torch.device | str) -> torch.nn.Module:
    """``module`` wrapped in DistributedDataParallel for this rank (on ``device``): the one wrapper of
    every data-parallel stage. ``find_unused_parameters``: a SuperNet path (or a zeroed edge) leaves
    parameters unused; they are unused on every rank alike, so their gradients stay None."""
    from torch.nn.parallel import DistributedDataParallel

    device = torch.device(device)
    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None,
                                   find_unused_parameters=True)


def check_divisible(batch_size: int, world_size: int, key: str) -> None:
    """A global batch must split evenly over the ranks (so the mean of rank means is the batch mean)."""
    if batch_size % world_size:
        raise ConfigError(
            f"{key}: {batch_size} images per batch do not split evenly over {world_size} processes; "
            f"use a multiple of {world_size}"
        )


def local_share(x: torch.Tensor, y: torch.Tensor, world: World | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's contiguous share of one global batch ``(x, y)`` (the whole batch alone)."""
    world = world or current()
    if not world.active:
        return x, y
    return x.tensor_split(world.size)[world.rank], y.tensor_split(world.size)[world.rank]


def all_reduce_mean_array(values: Any, weight: float) -> Any:
    """Weighted mean over the ranks of a float64 array ``values`` (``weight``: this rank's count).

    Every rank gets the same array (the sum runs in float64, in one all-reduce); as is alone.
    Used for per-architecture validation losses measured on each rank's share of a batch.
    """
    values = np.asarray(values, dtype=np.float64)
    world = current()
    if not world.active:
        return values
    buf = torch.from_numpy(np.append(values.reshape(-1) * float(weight), float(weight)))
    if world.backend == "nccl":
        buf = buf.cuda()
    dist.all_reduce(buf)
    buf = buf.cpu().numpy()
    return (buf[:-1] / buf[-1]).reshape(values.shape)


def all_reduce_mean(values: dict[str, float], weight: float) -> dict[str, float]:
    """Weighted mean of scalar ``values`` over the ranks (``weight``: this rank's count); as is alone."""
    world = current()
    if not world.active or not values:
        return dict(values)
    keys = sorted(values)
    buf = torch.tensor([values[k] * weight for k in keys] + [weight], dtype=torch.float64)
    if world.backend == "nccl":
        buf = buf.cuda()
    dist.all_reduce(buf)
    buf = buf.cpu()
    return {k: float(buf[i] / buf[-1]) for i, k in enumerate(keys)}


def all_reduce_mean_tensor(values: torch.Tensor) -> torch.Tensor:
    """Mean over the ranks of a detached tensor (equal shares assumed); as is alone. Stays on its device."""
    world = current()
    if not world.active:
        return values
    buf = values.detach().clone()
    dist.all_reduce(buf)
    return buf / world.size


def average_gradients(params: Sequence[torch.nn.Parameter]) -> None:
    """Average the gradients of ``params`` over the ranks in one all-reduce (a no-op alone).

    For steps DistributedDataParallel cannot reduce itself (a loss that also runs the wrapped
    module outside DDP's forward, such as the landmark paths, under ``no_sync``). A parameter
    without a gradient must lack it on every rank (the ranks run the same paths).
    """
    world = current()
    if not world.active:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world.size
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


# ---------------------------------------------------------------------------------------
# Launching workers from one process (the elastic launcher, as torchrun does)


def _set_threads(threads: int) -> None:
    """This worker's share of the cores: torch's threads and, unless the user set them, Inductor's
    compile workers (each worker compiling its own networks with a pool sized for the whole
    machine would start workers x cores compile processes)."""
    threads = max(1, threads)
    torch.set_num_threads(threads)
    if "TORCHINDUCTOR_COMPILE_THREADS" not in os.environ:
        os.environ["TORCHINDUCTOR_COMPILE_THREADS"] = str(threads)
        inductor = sys.modules.get("torch._inductor.config")  # read at its import: set it if imported already
        if inductor is not None:
            inductor.compile_threads = threads


def _own_session() -> None:
    """Start a new session, as torchrun does for its workers.

    With Linux's scheduler autogroups (on by default on desktops and many servers) a
    session shares one CPU quota: spawned workers left in the caller's session split one
    share between them on a busy machine (measured: no gain from 2 workers on 2 shared
    cores, against torchrun's workers that each had their own). The launcher still stops
    the workers when the caller is interrupted.
    """
    if hasattr(os, "setsid"):
        try:
            os.setsid()
        except OSError:  # already a session leader
            pass


class Heartbeat:
    """Each rank of a :func:`launch` stamps the time into the launch's store every ``every_s``
    seconds from a thread of its own. A rank that stops (SIGSTOP, a hang outside Python, a
    machine starved of CPU) stops stamping, while a rank blocked in a collective waiting for
    it goes on: so when a collective times out, the rank to blame is the silent one, not the
    one that gave up waiting."""

    def __init__(self, rank: int, size: int, every_s: float = 1.0) -> None:
        self.rank, self.size, self.every_s = rank, size, every_s
        self._client = _store_client(datetime.timedelta(seconds=30))
        self._prefix = f"wpnas/{os.environ.get('TORCHELASTIC_RUN_ID', 'run')}/alive/"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="wpnas-heartbeat", daemon=True)
        if self._client is not None:
            self._client.set(self._key(rank), repr(time.time()))
            self._thread.start()

    def _key(self, rank: int) -> str:
        return f"{self._prefix}{rank}"

    def _beat(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self._client.set(self._key(self.rank), repr(time.time()))
            except Exception:  # noqa: BLE001 - the store is gone: the launch is ending
                return

    def silent(self, quiet_s: float | None = None) -> list[tuple[int, float]]:
        """(rank, seconds since its last stamp) of the other ranks silent for over ``quiet_s``
        (default three beats), most silent first."""
        if self._client is None:
            return []
        quiet_s = 3 * self.every_s if quiet_s is None else quiet_s
        now, found = time.time(), []
        for rank in range(self.size):
            if rank == self.rank:
                continue
            try:
                if not self._client.check([self._key(rank)]):
                    continue
                age = now - float(self._client.get(self._key(rank)).decode())
            except Exception:  # noqa: BLE001
                continue
            if age > quiet_s:
                found.append((rank, age))
        return sorted(found, key=lambda item: -item[1])

    def stop(self) -> None:
        self._stop.set()


@record
def _worker(fn: Callable[..., Any], args: tuple, cfg: dict, device: str, threads: int, fingerprint_of: Any) -> Any:
    """One rank: join the group, check everyone got the same inputs, run ``fn(*args)``.

    An error while another rank has gone silent (see :class:`Heartbeat`) is reported as that
    rank's failure: this rank only timed out waiting for it."""
    _own_session()
    _set_threads(threads)
    world = init_from_env(cfg, device)
    heartbeat = Heartbeat(world.rank, world.size) if world.active else None
    try:
        check_consistent(fingerprint_of, "inputs")
        result = fn(*args)
        return result if world.is_main else None
    except Exception as err:
        silent = heartbeat.silent() if heartbeat is not None else []
        if not silent:
            raise
        rank, age = silent[0]
        first = (str(err).strip().splitlines() or [""])[0][:300]
        raise WorkerError(rank, f"stopped responding: no heartbeat for {age:.0f} s (stopped with SIGSTOP, hung, "
                                f"or starved of CPU); rank {world.rank} gave up waiting for it "
                                f"({type(err).__name__}: {first})") from err
    finally:
        if heartbeat is not None:
            heartbeat.stop()
        shutdown()


def worker_device(device: torch.device | str, local_rank: int) -> torch.device:
    """The device of local rank ``local_rank``: GPUs round-robin (several workers may share one)."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
    return device


def launch(
    fn: Callable[..., R],
    args: tuple,
    cfg: DistributedConfig | dict | None,
    device: torch.device | str = "cpu",
    fingerprint_of: Any = None,
    what: str = "stage",
) -> R:
    """Run ``fn(*args)`` on ``cfg.nproc_per_node`` local workers (a process group); return rank 0's result.

    ``fn`` must be a module-level function (workers are spawned, so ``fn`` and ``args`` are
    pickled). Inside, :func:`current` is the launched world and :func:`map_items` shards.
    Each worker uses ``threads // nproc`` torch threads (at least one). ``fingerprint_of``
    (default: ``cfg``) is hashed and compared across ranks before ``fn`` runs. A worker that
    raises or dies fails the call with :class:`~wpnas.errors.WorkerError` (its rank and error).
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    cfg = from_dict(DistributedConfig, cfg, where="run.distributed")
    nproc = cfg.nproc_per_node
    # fail here, not in every worker: NCCL on the CPU, more NCCL ranks than GPUs
    resolve_backend(cfg.backend, device, nproc)
    threads = max(1, torch.get_num_threads() // nproc)
    store, port = loopback_store(datetime.timedelta(seconds=cfg.timeout_s))
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"wpnas-{uuid.uuid4().hex[:12]}",
        rdzv_backend="c10d",
        rdzv_endpoint=f"{LOOPBACK}:{port}",
        rdzv_configs={"is_host": False},  # a client of the store above
        local_addr=LOOPBACK,
        max_restarts=0,
        start_method="spawn",
        monitor_interval=0.1,
        shutdown_timeout=10,  # then SIGKILL (a stopped worker ignores SIGTERM)
    )
    payload = (fn, args, _plain(cfg), str(device), threads, fingerprint_of if fingerprint_of is not None else _plain(cfg))
    logger.info("%s: starting %d workers (backend %s, %d torch thread(s) each)",
                what, nproc, resolve_backend(cfg.backend, device, nproc), threads)
    handlers = _signal_handlers()
    # no second store server on every interface for the workers (the launcher's shared one):
    # they join through the loopback store (init_from_env reads STORE_ENV)
    env = {"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1", STORE_ENV: f"{LOOPBACK}:{port}"}
    saved_env = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        results = elastic_launch(config, _worker)(*payload)
    except ChildFailedError as err:
        rank, message = _first_failure(err)
        raise WorkerError(rank, message) from None
    except SignalException as err:
        # The launcher replaced this process's handlers while the workers ran and turned the
        # signal into an Exception (which a pipeline would record as a failure). The workers
        # are stopped; give the signal to the handler the process had (e.g. the run guard's).
        _restore_signal_handlers(handlers)
        logger.warning("%s: received %s while the workers ran; workers stopped", what, err.sigval.name)
        signal.raise_signal(err.sigval)
        raise KeyboardInterrupt(f"received {err.sigval.name}") from None
    finally:
        _restore_signal_handlers(handlers)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        del store
    return results[0]


#: A single-node launch listens on the loopback only: nothing outside this machine can join.
LOOPBACK = "127.0.0.1"

#: The signals the elastic launcher takes over while its workers run (its default list).
LAUNCHER_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT")
                         if hasattr(signal, name))


def loopback_store(timeout: datetime.timedelta) -> tuple[dist.TCPStore, int]:
    """A TCPStore server listening on 127.0.0.1 only (TCPStore itself binds every interface,
    whatever host it is given), on a free port; (store, port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, 0))
        sock.listen(128)
        port = sock.getsockname()[1]
        store = dist.TCPStore(LOOPBACK, port, is_master=True, multi_tenant=True, wait_for_workers=False,
                              timeout=timeout, master_listen_fd=sock.detach())
    finally:
        sock.close()
    return store, port


def _signal_handlers() -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {signum: signal.getsignal(signum) for signum in LAUNCHER_SIGNALS}


def _restore_signal_handlers(handlers: dict[int, Any]) -> None:
    for signum, handler in handlers.items():
        if handler is not None:  # None: set outside Python, cannot be put back
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(signum, handler)


def _plain(cfg: DistributedConfig) -> dict[str, Any]:
    return {"nproc_per_node": cfg.nproc_per_node, "backend": cfg.backend, "timeout_s": cfg.timeout_s}


def _first_failure(err: ChildFailedError) -> tuple[int, str]:
    """(rank, message) of the failure to report: a recorded exception first, else the earliest exit."""
    failures = sorted(err.failures.items(), key=lambda kv: (kv[1].error_file_data == {} or not kv[1].message,
                                                            kv[1].timestamp, kv[0]))
    rank, failure = failures[0]
    message = failure.message
    if isinstance(message, dict):
        message = message.get("message", str(message))
    message = str(message)
    prefix = "WorkerError: worker rank "
    if message.startswith(prefix):  # a map already named the rank where the error arose
        head, _, rest = message[len(prefix):].partition(" failed: ")
        if head.isdigit():
            return int(head), rest
    if not failure.error_file_data or message.startswith("To enable traceback"):
        message = (f"exit code {failure.exitcode} (pid {failure.pid}) without a Python error "
                   "(killed, out of memory, or exited on its own)")
    return rank, message
