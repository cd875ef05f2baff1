"""Before the first node: can every output of the pipeline be written, and is there room?

A save that fails after hours of training loses the hours. Each file output of the
pipeline (catalog datasets with a local ``filepath``) must have a folder that can be
created and written (probed with a real file), and each disk room for what will land on it.
For a versioned dataset that folder is the version folder the save will write
(``<filepath>/<save version>/``), not ``<filepath>``'s parent. Temporary files left by a
write that was killed are removed from the output folders first.

Expected sizes (conservative, documented in docs/reliability.md):

- a torch checkpoint of a stage (SuperNet, predictor): the SuperNet's parameters and
  buffers in float32 x 3 (weights, optimizer momentum, slack for metadata and the
  temporary file of the atomic save) + 1 MiB;
- the image splits: every image of the source at its stored size (uint8) + 1 MiB;
- any other file (CSV, JSON, PNG): 1 MiB.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from wpnas.io.atomic import remove_stale_temporaries
from wpnas.io.checkpoints import check_output_locations

logger = logging.getLogger(__name__)

MIB = 1 << 20
SMALL_OUTPUT_BYTES = MIB
#: Images per source (train + test) for the image-splits estimate; image folders are counted.
SOURCE_IMAGES = {"digits": 1797, "cifar10": 60000, "cifar100": 60000}


def dataset_filepath(dataset: Any) -> Path | None:
    """The local file a catalog dataset writes, or None (memory, remote, unknown)."""
    path = getattr(dataset, "_filepath", None)
    if path is None:
        return None
    protocol = getattr(dataset, "_protocol", "file")
    if protocol not in (None, "file", "local"):
        return None
    return Path(str(path))


def dataset_save_path(dataset: Any) -> Path | None:
    """The exact local file a catalog dataset's next save writes: for a versioned dataset
    ``<filepath>/<save version>/<name>``, whose folder may be another mount, or not creatable
    (a file, an immutable folder) where ``<filepath>``'s parent is fine."""
    base = dataset_filepath(dataset)
    if base is None or getattr(dataset, "_version", None) is None:
        return base
    try:
        return Path(str(dataset._get_save_path()))
    except Exception:  # noqa: BLE001 - e.g. that version exists already: Kedro's save will say so
        return base


def supernet_checkpoint_bytes(params: dict[str, Any]) -> int:
    """Expected size of a stage checkpoint: SuperNet tensors (float32) x 3 + 1 MiB."""
    from wpnas.pipelines.params import _input_shape, _num_classes, space_config

    _, space = space_config(params.get("space"))
    shape = _input_shape(params) or (3, 32, 32)
    net = space.build_supernet(shape[0], _num_classes(params))
    tensors = sum(t.numel() * t.element_size() for t in [*net.parameters(), *net.buffers()])
    return 3 * tensors + MIB


def image_splits_bytes(params: dict[str, Any]) -> int:
    """Expected size of the image splits: every source image as uint8 at its stored size + 1 MiB."""
    from wpnas.data.sources import IMAGE_EXTENSIONS
    from wpnas.pipelines.params import _input_shape, data_config

    cfg = data_config(params.get("data"))
    shape = _input_shape(params) or (3, 256, 256)  # image folders without image_size: assume 256 x 256
    if cfg.source == "image_folder":
        root = Path(cfg.root)
        count = sum(1 for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS) if root.is_dir() else 0
    else:
        count = SOURCE_IMAGES[cfg.source]
    if cfg.train_limit is not None and cfg.source != "image_folder":
        count = min(count, cfg.train_limit + (cfg.test_limit or count))
    return count * shape[0] * shape[1] * shape[2] + MIB


def expected_output_bytes(name: str, dataset: Any, params: dict[str, Any], cache: dict[str, int]) -> int:
    from wpnas.pipelines.datasets import TorchCheckpointDataset

    if not isinstance(dataset, TorchCheckpointDataset):
        return SMALL_OUTPUT_BYTES
    kind = "splits" if name == "image_splits" else "checkpoint"
    if kind not in cache:
        cache[kind] = image_splits_bytes(params) if kind == "splits" else supernet_checkpoint_bytes(params)
    return cache[kind]


#: node -> the stage whose in-progress checkpoints it writes (``run.checkpoint_dir``)
CHECKPOINTING_NODES = {"warmup_supernet": "warmup", "landmark_warmup": "landmark_phase",
                      "acquire_ground_truth": "ground_truth", "search_architecture": "search",
                      "evaluate_final_model": "evaluation", "ablation_warmup_uniform": "warmup",
                      "ablation_ground_truth": "ground_truth", "ablation_warmup_landmark": "warmup",
                      "ablation_rows": "search"}


def in_progress_outputs(nodes: set[str], params: dict[str, Any], cache: dict[str, int]) -> list[tuple[Path, int, str]]:
    """The checkpoint folder of the stages in ``nodes`` that checkpoint while they run: one
    SuperNet checkpoint each (the ground-truth rows are far smaller; counted as one too).
    An ablation node counts once per stage, though its finished seeds are kept beside it
    until it completes (a warmed SuperNet per finished seed: an underestimate)."""
    from wpnas.pipelines.params import checkpoint_policy

    outputs = []
    for node, stage in CHECKPOINTING_NODES.items():
        if node not in nodes or stage not in params:
            continue
        policy = checkpoint_policy(params[stage], params.get("run"), stage)
        if policy.every == 0:
            continue
        if "checkpoint" not in cache:
            cache["checkpoint"] = supernet_checkpoint_bytes(params)
        folder = Path(policy.folder)
        folder = folder if folder.is_absolute() else Path.cwd() / folder
        outputs.append((folder / f"{stage}.pt", cache["checkpoint"],
                        f"in-progress checkpoints of {stage} (run.checkpoint_dir)"))
    return outputs


def check_artifact_store(artifact_uri: str | None, pipeline: Any, catalog: Any) -> None:
    """The MLflow run's artifact folder (``mlartifacts/...`` by default), when local, must take
    the reports kedro-mlflow logs as they are saved (1 MiB each, see the module docstring)."""
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    if not artifact_uri:
        return
    parsed = urlparse(artifact_uri)
    if parsed.scheme not in ("", "file"):
        return  # a remote store: not ours to probe
    folder = Path(url2pathname(parsed.path))
    names = {out for node in pipeline.nodes for out in node.outputs}
    logged = [n for n in names if hasattr(catalog, "get") and hasattr(catalog.get(n), "_logging_activated")]
    if logged:
        check_output_locations([(folder / "probe", SMALL_OUTPUT_BYTES * len(logged),
                                 f"MLflow artifacts of this run ({len(logged)} report(s))")])


def remove_left_temporaries(folders: list[Path]) -> None:
    """Remove the temporary files of writes killed mid-way (SIGKILL) in the run's output folders;
    called under the project folder's lock, so no write of another run can be in flight."""
    removed = [p for folder in dict.fromkeys(folders) for p in remove_stale_temporaries(folder)]
    if removed:
        logger.warning("removed %d temporary file(s) left by a write that was killed: %s", len(removed),
                       ", ".join(str(p) for p in removed[:5]))


def check_pipeline_outputs(pipeline: Any, catalog: Any, params: dict[str, Any]) -> None:
    """Raise :class:`~wpnas.errors.StorageError` now for an output that could not be saved later."""
    outputs: list[tuple[Path, int, str]] = []
    cache: dict[str, int] = {}
    names = list(dict.fromkeys(out for node in pipeline.nodes for out in node.outputs))  # in running order
    artifact_folders = []
    for name in names:
        dataset = catalog.get(name) if hasattr(catalog, "get") else None
        path = dataset_save_path(dataset) if dataset is not None else None
        if path is None:
            continue
        path = path if path.is_absolute() else Path.cwd() / path  # Kedro resolves against the working folder
        outputs.append((path, expected_output_bytes(name, dataset, params, cache), f"output {name!r}"))
        base = dataset_filepath(dataset)
        artifact_folders.append(base if base.is_absolute() else Path.cwd() / base)
    outputs += in_progress_outputs({node.name for node in pipeline.nodes}, params, cache)
    remove_left_temporaries([*artifact_folders, *(path.parent for path, _, _ in outputs)])
    check_output_locations(outputs)
    if outputs:
        logger.info("output locations checked: %d file(s) writable, about %.1f MiB needed", len(outputs),
                    sum(n for _, n, _ in outputs) / MIB)
