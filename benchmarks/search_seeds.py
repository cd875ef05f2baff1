"""What `kedro run --pipelines=search` finds, seed by seed, against what a user could have had instead.

Runs the search pipeline's own nodes in order (data, WarmUp, ground truth, landmark phase,
predictor, search, final selection) with the parameters of a Kedro environment plus
overrides, once per seed, and places in a benchmark table (rank 1 = best):

* ``found``: the pipeline's result (after the final selection);
* ``search choice``: the search's own choice, the paper's plain argmax (selection off);
* ``best ground truth``: the best of the ground-truth architectures the run paid for;
* ``SPOS + landmark``: SPOS evolution on the same landmark SuperNet (its own final choice);

with the wall time of every stage. "Today's pipeline" time is the run without the landmark
phase and the selection (the search on the landmark SuperNet stands for the search on the
warmed one: the same steps). Results go to ``--json`` after every seed, so a cut run keeps
what it measured. Check it on your own seeds:

    python benchmarks/search_seeds.py --env cifar10 --seeds 11 12 13 --json /tmp/seeds.json \\
        --params "ground_truth.source=benchmark,ground_truth.num_archs=100,\\
    ground_truth.benchmark.kind=csv,ground_truth.benchmark.path=../shared/data/nb201/nb201_cifar10.csv,\\
    ground_truth.benchmark.metric=cifar10_valid_12ep"

Several seeds at once: one process per seed with ``OMP_NUM_THREADS=1``.

A latency-bounded search (``search.max_latency_ms``, with ``search.wpnas.reward.cost=latency`` to
price it too): ``--build-latency-table`` first measures the table into ``latency.table_path``
(on an idle machine); each row then gives the bound, the found network's table and measured
latency, and the best ground-truth architecture within the bound (SPOS is bounded too).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import NB201_TABLE, REPO, SSS_TABLE, cifar10_tree, emit

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")

from kedro.config import OmegaConfigLoader  # noqa: E402  (benchmarks may use the Kedro glue)

from wpnas.io.checkpoints import save_checkpoint  # noqa: E402
from wpnas.latency import newest_table_file  # noqa: E402
from wpnas.nasbench import BenchmarkTable  # noqa: E402
from wpnas.pipelines.data_processing.nodes import prepare_image_splits  # noqa: E402
from wpnas.pipelines.ground_truth.nodes import acquire_ground_truth  # noqa: E402
from wpnas.pipelines.landmark_phase.nodes import landmark_warmup  # noqa: E402
from wpnas.pipelines.latency.nodes import build_latency_table  # noqa: E402
from wpnas.pipelines.params import latency_table_for, search_config, space_config, validate_parameters  # noqa: E402
from wpnas.pipelines.predictor.nodes import train_predictor  # noqa: E402
from wpnas.pipelines.search.nodes import search_architecture, select_final_architecture  # noqa: E402
from wpnas.pipelines.warmup.nodes import warmup_supernet  # noqa: E402
from wpnas.settings import CONFIG_LOADER_ARGS  # noqa: E402

#: Space -> (default table, the column found architectures are ranked in).
RANKING = {"nats_tss": (NB201_TABLE, "cifar10_test_200ep"), "nats_sss": (SSS_TABLE, "cifar10_valid_90ep")}

SEARCH_NODES = ["prepare_image_splits", "warmup_supernet", "acquire_ground_truth", "landmark_warmup",
                "train_predictor", "search_architecture", "select_final_architecture"]


def parameters(env: str, overrides: str, seed: int, data_root: str | None) -> dict[str, Any]:
    """The parameters ``kedro run --env ENV --params OVERRIDES`` would hand the nodes."""
    runtime: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in overrides.split(","))):
        key, _, value = item.partition("=")
        runtime[key.strip()] = value.strip()
    runtime["run.seed"] = str(seed)
    if data_root is not None:
        runtime.setdefault("data.source", "image_folder")
        runtime.setdefault("data.root", data_root)
    loader = OmegaConfigLoader(conf_source=str(REPO / "conf"), env=env, runtime_params=_nested(runtime),
                               **CONFIG_LOADER_ARGS)
    return loader["parameters"]


def _nested(flat: dict[str, str]) -> dict[str, Any]:
    """``{"a.b": "1"}`` -> ``{"a": {"b": 1}}`` with YAML scalars parsed (what ``--params`` does)."""
    import yaml

    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, last = key.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = yaml.safe_load(value)
    return nested


def ranking_table(space_params: dict[str, Any], table: str | None, metric: str | None) -> tuple[BenchmarkTable, str]:
    """The table and column found architectures are ranked in: the given ones, else the space's default."""
    _, space = space_config(space_params)
    if space.name not in RANKING and not (table and metric):
        raise SystemExit(f"space {space.name!r} has no default benchmark table: pass --table and --metric")
    default_table, default_metric = RANKING.get(space.name, (None, None))
    return BenchmarkTable.from_csv(table or default_table, space), metric or default_metric


def run_seed(params: dict[str, Any], table: BenchmarkTable, metric: str, baselines: bool,
             save_to: Path | None = None) -> dict[str, Any]:
    validate_parameters(params, SEARCH_NODES)
    times: dict[str, float] = {}

    def timed(name: str, fn, *args):
        started = time.monotonic()
        out = fn(*args)
        times[name] = round(time.monotonic() - started, 1)
        return out

    run, space, search = params["run"], params["space"], params["search"]
    splits, _ = timed("data", prepare_image_splits, params["data"])
    warmed, _ = timed("warmup", warmup_supernet, splits, run, space, params["warmup"])
    pairs, gt_summary = timed("ground_truth", acquire_ground_truth, warmed, splits, run, space, params["ground_truth"])
    phased, _ = timed("landmark_phase", landmark_warmup, warmed, pairs, gt_summary, splits, run, space,
                      params["warmup"], params["landmark_phase"])
    if save_to is not None:  # for diagnostics (benchmarks/reward_signal.py reads a SuperNet checkpoint)
        save_to.mkdir(parents=True, exist_ok=True)
        save_checkpoint(warmed, save_to / f"warmed_seed{run['seed']}.pt")
        save_checkpoint(phased, save_to / f"landmark_seed{run['seed']}.pt")
    predictor, metrics, _ = timed("predictor", train_predictor, pairs, run, space, params["predictor"])
    latency, evaluation = params.get("latency"), params.get("evaluation")
    _, _, _, own = timed("search", search_architecture, phased, predictor, pairs, splits, run, space, search, gt_summary,
                         latency, evaluation)
    found, candidates = timed("selection", select_final_architecture, own, predictor, pairs, warmed, splits, run,
                              space, search, params["ground_truth"], gt_summary, latency, evaluation)
    _, search_space = space_config(space)
    ranks = table.ranks(metric)

    def place(arch: str) -> dict[str, Any]:
        return {"arch": arch, "accuracy": float(table.lookup(arch, metric)), "rank": int(table.rank(arch, metric))}

    best_gt = str(pairs.sort_values("accuracy", ascending=False, kind="stable").iloc[0]["arch"])
    row: dict[str, Any] = {
        "seed": int(run["seed"]),
        "found": {**place(found["arch"]), "origin": (found.get("selection") or {}).get("origin")},
        "search_choice": place(own["arch"]),
        "best_ground_truth": {**place(best_gt), "score": float(pairs["accuracy"].max())},
        "ground_truth_source": str(pairs["source"].iloc[0]),
        "selection": {k: v for k, v in (found.get("selection") or {}).items() if k in (
            "enabled", "candidates", "new_evaluations", "scored_by", "score")},
        "predictor_valid_kendall_tau": metrics.get("valid_kendall_tau"),
        "median_rank": float(np.median(ranks)),
        "seconds": times,
    }
    bound = search_config(search).max_latency_ms
    if bound is not None:  # the latency-bounded search: the found network against the best ground truth in the bound
        table_ms = latency_table_for(latency, evaluation, search_space, own["input_shape"], int(own["num_classes"])).latency
        within = pairs[[table_ms(search_space.parse(str(a))) <= bound for a in pairs["arch"]]]
        row["latency"] = {
            "bound_ms": bound, "found_table_ms": float(found["latency_table_ms"]),
            "found_measured_ms": float(found["latency_ms"]), "found_within_bound": found["latency_table_ms"] <= bound,
            "ground_truth_within_bound": int(len(within)),
            "best_ground_truth_within_bound": None if within.empty else {
                **place(str(within.sort_values("accuracy", ascending=False, kind="stable").iloc[0]["arch"])),
                "score": float(within["accuracy"].max())},
        }
    if baselines:  # SPOS + landmark: evolution on the same landmark SuperNet (within the bound), its own final choice
        spos = {**search, "method": "spos_evolution", "selection": {**search.get("selection", {}), "enabled": False}}
        _, _, _, evolved = timed("spos_landmark", search_architecture, phased, predictor, pairs, splits, run, space, spos,
                                 gt_summary, latency, evaluation)
        row["spos_landmark"] = place(evolved["arch"])
    before = sum(times[k] for k in ("data", "warmup", "ground_truth", "predictor", "search"))
    row["pipeline_seconds"] = round(before + times["landmark_phase"] + times["selection"], 1)
    row["pipeline_seconds_without_phase_and_selection"] = round(before, 1)
    row["wall_ratio"] = round(row["pipeline_seconds"] / max(before, 1e-9), 3)
    row["space"] = search_space.name
    del candidates
    return row


def save_latency_table(params: dict[str, Any]) -> Path:
    """The latency table of this setting, saved as a new version of ``latency.table_path`` (the catalog's layout)."""
    from kedro.io.core import Version
    from kedro_datasets.json import JSONDataset

    data = build_latency_table(params["run"], params["space"], params["data"], params["latency"], params.get("evaluation"))
    JSONDataset(filepath=params["latency"]["table_path"], version=Version(None, None)).save(data)
    path = newest_table_file(params["latency"]["table_path"])  # what a search will read
    print(f"latency table: {len(data['entries'])} units in {data['seconds']:.1f} s -> {path}", file=sys.stderr)
    return path


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def stats(key: str) -> dict[str, float] | None:
        values = [r[key]["rank"] for r in rows if key in r]
        return None if not values else {"mean": float(np.mean(values)), "max": int(np.max(values)),
                                        "median": float(np.median(values))}

    return {
        "seeds": [r["seed"] for r in rows],
        **{key: stats(key) for key in ("found", "search_choice", "best_ground_truth", "spos_landmark")},
        "found_beats_or_equals_best_ground_truth": sum(
            r["found"]["rank"] <= r["best_ground_truth"]["rank"] for r in rows),
        "found_beats_spos_landmark": sum(r["found"]["rank"] < r["spos_landmark"]["rank"] for r in rows
                                         if "spos_landmark" in r),
        "wall_ratio_max": max(r["wall_ratio"] for r in rows),
        **({} if not any("latency" in r for r in rows) else {
            "found_within_bound": sum(bool(r["latency"]["found_within_bound"]) for r in rows if "latency" in r),
            "found_beats_best_ground_truth_within_bound": sum(
                r["found"]["accuracy"] > r["latency"]["best_ground_truth_within_bound"]["accuracy"]
                for r in rows if "latency" in r and r["latency"]["best_ground_truth_within_bound"])}),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="cifar10", help="Kedro environment (conf/<env>)")
    p.add_argument("--params", default="", help="Kedro-style overrides: 'key=value,key=value'")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--data", help="CIFAR-10 image folder or .tar.gz (default: the shared tarball; "
                                  "'none' keeps the environment's data section)")
    p.add_argument("--table", help="benchmark table to rank found architectures in (default: the space's)")
    p.add_argument("--metric", help="its column (default: the space's reported column)")
    p.add_argument("--no-baselines", action="store_true", help="skip SPOS + landmark")
    p.add_argument("--json", help="write the rows and the summary here after every seed")
    p.add_argument("--save-supernets", help="folder for each seed's warmed and landmark SuperNet checkpoints")
    p.add_argument("--build-latency-table", action="store_true",
                   help="first measure the latency table (the latency pipeline's node) into latency.table_path, "
                        "for a search that prices or bounds latency; run it on an idle machine")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    data_root = None if args.data == "none" else str(cifar10_tree(args.data))
    first = parameters(args.env, args.params, args.seeds[0], data_root)
    table, metric = ranking_table(first["space"], args.table, args.metric)
    if args.build_latency_table:
        save_latency_table(first)
    report: dict[str, Any] = {"env": args.env, "params": args.params, "metric": metric, "rows": []}
    for seed in args.seeds:
        row = run_seed(parameters(args.env, args.params, seed, data_root), table, metric, not args.no_baselines,
                       Path(args.save_supernets) if args.save_supernets else None)
        report["rows"].append(row)
        report["summary"] = summarize(report["rows"])
        emit(row, report, args.json)
    print(json.dumps(report["summary"], indent=1))


if __name__ == "__main__":
    main()
