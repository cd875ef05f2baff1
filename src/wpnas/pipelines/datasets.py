"""Kedro datasets of our own: torch checkpoints and TorchScript files on local disk, written atomically.

The file logic lives in :mod:`wpnas.io.checkpoints` and :mod:`wpnas.io.torchscript` (plain
library); these classes only adapt it to Kedro's catalog (paths, versioning,
``exists``/``describe``). :class:`VersionedArtifactDataset` makes kedro-mlflow's report
wrapper versionable, and its writes atomic (:class:`AtomicLocalFileSystem`).
"""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io.core import AbstractVersionedDataset, DatasetError, Version
from kedro_mlflow.io.artifacts import MlflowArtifactDataset

from wpnas.data.splits import ImageSplits
from wpnas.errors import CheckpointError, DataError
from wpnas.io.atomic import atomic_write
from wpnas.io.checkpoints import load_checkpoint, save_checkpoint
from wpnas.io.torchscript import TorchScriptExport, load_torchscript, save_torchscript

logger = logging.getLogger(__name__)


class _LocalFileDataset(AbstractVersionedDataset):
    """A versioned local file: the catalog's path and version handling, shared by our datasets."""

    def __init__(
        self,
        filepath: str,
        version: Version | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(filepath=PurePosixPath(filepath), version=version,
                         exists_function=lambda path: Path(path).exists())
        self.metadata = metadata

    def _exists(self) -> bool:
        try:
            path = self._get_load_path()
        except DatasetError:
            return False
        return Path(path).exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "version": self._version}


class TorchCheckpointDataset(_LocalFileDataset):
    """A dict of tensors / state dicts / metadata saved with ``torch.save``.

    Saving accepts a dict or any object with ``to_checkpoint() -> dict`` (e.g. ImageSplits).
    Loading always maps to the CPU, so a checkpoint written on a GPU loads anywhere.
    A failing save leaves the previous file untouched (temporary file + rename).
    """

    def load(self) -> dict:
        path = str(self._get_load_path())
        try:
            return load_checkpoint(path)
        except CheckpointError as err:
            raise DatasetError(str(err)) from err

    def save(self, data: Any) -> None:
        if hasattr(data, "to_checkpoint"):
            data = data.to_checkpoint()
        if not isinstance(data, dict):
            raise DatasetError(f"TorchCheckpointDataset saves dicts, got {type(data).__name__}")
        save_checkpoint(data, str(self._get_save_path()))


class ImageSplitsDataset(TorchCheckpointDataset):
    """The image splits: saved as their checkpoint dict, loaded as :class:`ImageSplits`, so that
    every node (and hook) reading them gets the typed object, made once per load."""

    def load(self) -> ImageSplits:
        data = super().load()
        try:
            return ImageSplits.from_checkpoint(data)
        except (DataError, KeyError, TypeError) as err:
            raise DatasetError(f"{self._get_load_path()}: {err}") from err


class TorchScriptDataset(_LocalFileDataset):
    """A TorchScript module with its metadata (``TorchScriptExport``), saved with ``torch.jit.save``.

    The file loads with plain ``torch.jit.load`` (see :mod:`wpnas.io.torchscript`). An export
    without a module (``evaluation.export: none``) writes nothing and leaves any previous
    file as it is; a failing save never replaces a good file (temporary file + rename).
    """

    def load(self) -> TorchScriptExport:
        try:
            return load_torchscript(str(self._get_load_path()))
        except CheckpointError as err:
            raise DatasetError(str(err)) from err

    def save(self, data: TorchScriptExport) -> None:
        if not isinstance(data, TorchScriptExport):
            raise DatasetError(f"TorchScriptDataset saves a TorchScriptExport, got {type(data).__name__}")
        if data.module is None:
            logger.info("no TorchScript export (export is off); %s left as it is", self._filepath)
            return
        save_torchscript(data, str(self._get_save_path()))


class AtomicLocalFileSystem:
    """A local fsspec filesystem whose writes go through :func:`wpnas.io.atomic.atomic_write`.

    Kedro's file datasets (JSON, CSV, Matplotlib, text) write with
    ``with self._fs.open(path, mode="w...") as f``; given this proxy as their ``_fs``, every
    such write lands in a temporary file that becomes ``path`` only once complete, so a full
    disk or a kill leaves no truncated file (and no new version) behind. Everything else is
    the wrapped filesystem's."""

    def __init__(self, fs: Any) -> None:
        self._wrapped_fs = fs

    def open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if "w" not in mode and "x" not in mode:
            return self._wrapped_fs.open(path, mode=mode, **kwargs)
        return atomic_write(path, mode, what="artifact", **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped_fs, name)


def make_writes_atomic(dataset: Any) -> Any:
    """Give a local file dataset (one with an fsspec ``_fs`` on the local protocol) atomic writes."""
    fs = getattr(dataset, "_fs", None)
    if fs is not None and not isinstance(fs, AtomicLocalFileSystem) and getattr(
            dataset, "_protocol", "file") in ("file", "local"):
        dataset._fs = AtomicLocalFileSystem(fs)
    return dataset


class VersionedArtifactDataset(MlflowArtifactDataset):
    """kedro-mlflow's ``MlflowArtifactDataset`` that takes part in Kedro's catalog versioning.

    With kedro-mlflow 2.0.3, ``versioned: true`` on the *inner* dataset gives it a save version
    of its own (a fresh timestamp), which the catalog refuses ("All datasets in the catalog
    must have the same save version"), and ``versioned: true`` on the outer entry passes a
    ``version`` argument that ``MlflowArtifactDataset`` does not accept. This factory accepts
    the catalog's ``version`` (the run's save version, or a ``--load-versions`` entry) and gives
    it to the wrapped dataset, so a report lands in ``<filepath>/<save version>/<file name>``
    like every versioned checkpoint, and is still logged to the active MLflow run on save.

    Catalog entry::

        final_genotype:
          type: wpnas.pipelines.datasets.VersionedArtifactDataset
          versioned: true
          dataset: {type: json.JSONDataset, filepath: data/07_model_output/final_genotype.json}
    """

    def __new__(  # type: ignore[misc]
        cls,
        dataset: str | dict,
        version: Version | None = None,
        run_id: str | None = None,
        artifact_path: str | None = None,
        credentials: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Any:
        inner = {"type": dataset} if isinstance(dataset, str) else dict(dataset)
        if "filepath" not in inner:
            raise DatasetError(f"VersionedArtifactDataset: the wrapped dataset {inner!r} has no 'filepath'")
        if version is not None:
            inner["versioned"] = True
        instance = MlflowArtifactDataset.__new__(
            MlflowArtifactDataset, dataset=inner, run_id=run_id, artifact_path=artifact_path,
            credentials=credentials, metadata=metadata,
        )
        if version is not None:
            # the wrapped dataset made up its own save version; use the catalog's (one per run)
            instance._version = version
            instance._clear_version_cache()
        return make_writes_atomic(instance)
