"""Nodes of the latency pipeline, and the measured latency the search and report nodes record."""

from __future__ import annotations

import logging
from typing import Any

from wpnas import tracking
from wpnas.errors import ConfigError
from wpnas.latency import LatencyTable, build_table, measure_architecture
from wpnas.pipelines.params import input_shape_of, latency_config, network_options, num_classes_of, run_config, \
    space_config
from wpnas.spaces import SearchSpace

logger = logging.getLogger(__name__)


def table_shape(data: Any) -> tuple[int, int, int]:
    """The input shape the data section produces; the table is measured at it."""
    shape = input_shape_of({"data": data})
    if shape is None:
        raise ConfigError("latency: the data section has no fixed image size (set data.image_size); the table "
                          "is measured at the input size")
    return shape


def build_latency_table(run: dict[str, Any], space: dict[str, Any], data: dict[str, Any], latency: dict[str, Any],
                       evaluation: dict[str, Any] | None = None) -> dict[str, Any]:
    """Measure the space's latency table on ``latency.device`` (the versioned ``latency_table``)."""
    cfg = latency_config(latency)
    _, search_space = space_config(space)
    table = build_table(search_space, cfg, table_shape(data), num_classes_of({"data": data}),
                        network_options(evaluation), seed=run_config(run).seed, log=logger.info)
    fields = table["fingerprint"]["fields"]
    tracking.set_tags({"latency_fingerprint": table["fingerprint"]["fingerprint"],
                       "latency_device": fields["device_name"]})
    tracking.log_metrics({"units": len(table["entries"]), "cover_archs": table["cover_archs"],
                          "glue_ms": table["glue_ms"], "unit_scale": table["unit_scale"],
                          "ms_per_mflop": table["ms_per_mflop"],
                          "calibration_median_abs_rel_error": table["calibration_median_abs_rel_error"],
                          "lower_bound_ms": table["lower_bound_ms"],
                          "seconds": table["seconds"]}, prefix="latency/")
    return table


def measured_latency(genotype: dict[str, Any], table: LatencyTable, latency: dict[str, Any] | None,
                     evaluation: dict[str, Any] | None, space: SearchSpace) -> dict[str, Any]:
    """The found architecture's whole evaluation network timed on the table's device (not the table's
    sum), with the table's sum beside it; logged as ``final/latency_ms`` and ``final/latency_table_ms``."""
    cfg = latency_config(latency)
    arch = space.parse(genotype["arch"])
    shape = genotype.get("input_shape") or list(table.input_shape)
    measured = measure_architecture(space, arch, cfg, shape, int(genotype.get("num_classes", 10)),
                                    network_options(evaluation))
    out = {"latency_ms": measured, "latency_table_ms": float(table.latency(arch)),
           "latency_device": table.fingerprint["fields"]["device_name"],
           "latency_fingerprint": table.fingerprint["fingerprint"]}
    tracking.log_metrics({k: out[k] for k in ("latency_ms", "latency_table_ms")}, prefix="final/")
    return out
