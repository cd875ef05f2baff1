"""Named random streams: every seeded draw in wpnas derives from the run seed and a name.

A stage that needs its own generator asks for ``stream_seed(seed, "warmup.probes")``
instead of adding a private constant to the seed, so the streams are listed (and kept
apart) in one place. The offsets are the values the project has always used: changing
one changes which architectures, batches or splits a given seed produces.
"""

from __future__ import annotations

#: stream name -> offset added to the seed it derives from.
STREAMS: dict[str, int] = {
    # data (offsets from data.seed)
    "data.order": 55,
    "data.train_limit": 101,
    "data.test_limit": 202,
    "data.test_split": 7,
    "data.valid_split": 0,
    "data.test_order": 2027,  # fixed_seed: the same order whatever data.seed
    "batches.limit": 9973,
    # BN recalibration and evaluation batches (offsets from the run seed)
    "calibration": 1,
    # warm-up
    "warmup.probes": 7919,
    "warmup.init": 7933,
    # ground truth
    "ground_truth.archs": 4241,
    # predictor
    "predictor.split": 31337,
    "predictor.support": 7919,
    # WPNAS search
    "search.sampler": 7727,
    "search.valid_batches": 1,
    "hypernet.init": 1543,
    # final selection: the predictor's sample of a large space, the candidates' fine-tunes
    "selection.predictor_sample": 4409,
    "selection": 4421,
    # baselines and evaluation
    "evolution": 3571,
    "landmark": 6007,
    "ranking.sample": 2027,
    # latency table: the cover architectures, the dependency probe, the calibration architectures
    "latency.cover": 5023,
    "latency.window": 5024,
    "latency.calibration": 5039,
    # evaluation from scratch (paper step 5)
    "evaluation.init": 8831,
    "evaluation.batches": 8837,
    "evaluation.drop_path": 12553,  # plus the rank, under torch.distributed
    # fixed draws (fixed_seed: the same whatever the run seed)
    "ablation.predictor_candidates": 0,  # the architectures the ablation's predictors are scored on
    "graphs.capture_paths": 0,  # the paths that capture the per-op CUDA graphs
    "export.probe": 0,  # the TorchScript trace's example and probe batches
}


def stream_seed(seed: int, stream: str) -> int:
    """The seed of ``stream`` for base ``seed`` (raises ``KeyError`` naming the known streams)."""
    try:
        return int(seed) + STREAMS[stream]
    except KeyError:
        raise KeyError(f"unknown random stream {stream!r}; known: {sorted(STREAMS)}") from None


def fixed_seed(stream: str) -> int:
    """The seed of a draw that is the same whatever the run seed (``stream_seed(0, stream)``)."""
    return stream_seed(0, stream)


def add_stream(name: str, offset: int) -> None:
    """Add the stream of a module that brings its own draws (a search method in one file); adding
    a name again with the same offset is a no-op, with another one an error."""
    if STREAMS.get(name, offset) != offset:
        raise ValueError(f"random stream {name!r} already has offset {STREAMS[name]}, not {offset}")
    STREAMS[name] = offset
