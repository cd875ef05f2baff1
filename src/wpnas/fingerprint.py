"""Fingerprints: a short stable hash of what produced an artifact, and the check against it.

A fingerprint *record* is ``{"fingerprint": <16 hex>, "fields": {...}}``: the hash of the
canonical JSON of ``fields`` (sorted keys, no spaces), so the same settings give the same
fingerprint in every process and on every machine. Keeping the fields beside the hash lets
a mismatch name what differs (``input_shape: [1, 16, 16] != [1, 8, 8]``), not only that
two hashes differ. Upstream artifacts enter a record as their own fingerprints, so a
record changes whenever anything upstream changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from wpnas.errors import WpnasError

logger = logging.getLogger(__name__)

LENGTH = 16


def canonical(value: Any) -> str:
    """The canonical JSON text of ``value`` (tuples as lists, unknown objects by ``str``)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def fingerprint(value: Any) -> str:
    """16 hex digits of the SHA-256 of ``canonical(value)``."""
    return hashlib.sha256(canonical(value).encode()).hexdigest()[:LENGTH]


def content_fingerprint(value: Any) -> str:
    """16 hex digits of a hash of ``value``'s content: nested dicts (keys sorted), lists and
    tuples, tensors and arrays by dtype, shape and bytes, anything else by its canonical JSON.
    For weights and tables, whose printed form would be truncated."""
    digest = hashlib.sha256()
    _feed(digest, value)
    return digest.hexdigest()[:LENGTH]


def _feed(digest: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().contiguous()
        digest.update(f"T{value.dtype}{tuple(value.shape)}".encode())
        if value.numel():
            digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, np.ndarray):
        digest.update(f"A{value.dtype}{value.shape}".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, Mapping):
        digest.update(b"{")
        for key in sorted(value, key=str):
            digest.update(canonical(str(key)).encode())
            _feed(digest, value[key])
        digest.update(b"}")
    elif isinstance(value, (list, tuple)):
        digest.update(b"[")
        for item in value:
            _feed(digest, item)
        digest.update(b"]")
    else:
        digest.update(canonical(value).encode() + b";")


def record(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``{"fingerprint": fingerprint(fields), "fields": fields}`` (fields as plain JSON values)."""
    plain = json.loads(canonical(dict(fields)))
    return {"fingerprint": fingerprint(plain), "fields": plain}


def differences(expected: Mapping[str, Any], found: Mapping[str, Any]) -> list[str]:
    """``"key: expected != found"`` for each top-level field that differs (either side may lack it)."""
    missing = object()
    out = []
    for key in sorted(set(expected) | set(found)):
        a, b = expected.get(key, missing), found.get(key, missing)
        if a is missing or b is missing or canonical(a) != canonical(b):
            show = lambda v: "(absent)" if v is missing else canonical(v)  # noqa: E731
            out.append(f"{key}: {show(a)} != {show(b)}")
    return out


def check_fingerprint(
    expected: Mapping[str, Any],
    found: Mapping[str, Any] | None,
    what: str,
    error: type[WpnasError],
    hint: str = "",
) -> None:
    """Raise ``error`` when record ``found`` (what an artifact says it was made from) is not
    record ``expected`` (what the current inputs and parameters make). The message names
    both fingerprints and each field that differs; ``found`` None (an artifact written
    before fingerprints existed) is accepted with a warning."""
    if found is None or "fingerprint" not in found:
        logger.warning("%s carries no fingerprint (written by an older wpnas); not checked against %s",
                       what, expected["fingerprint"])
        return
    if found["fingerprint"] == expected["fingerprint"]:
        return
    diff = differences(expected.get("fields", {}), found.get("fields", {}))
    detail = "; ".join(diff) if diff else "no field listed differs (the hashing changed)"
    raise error(
        f"{what} was made from other inputs: it records fingerprint {found['fingerprint']}, the current "
        f"inputs and parameters give {expected['fingerprint']} (current != recorded: {detail})"
        + (f". {hint}" if hint else "")
    )
