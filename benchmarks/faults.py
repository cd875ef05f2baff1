"""The fault battery of issue 23: every fault and bad input that lost work or recorded a wrong
result, tried again, with the table of docs/reliability.md ("Issue 23") as its output.

Each case is a test under tests/ that first reproduces the fault (a writer that fills the
disk mid-file, a file where a version folder goes, a one-image split, a signal to the
parent of a two-process Gloo stage, a stopped rank, out-of-range pairs...) and then checks
how it is handled; the battery runs them with pytest and counts a case handled when its
test passes. ``harm`` is what the case did before the fix: ``lost`` (work thrown away) or
``wrong`` (a wrong result recorded, or a run that should have failed exiting 0).

    python benchmarks/faults.py                 # every case (about 4 minutes on 2 shared CPU cores)
    python benchmarks/faults.py --fast          # without the cases that start kedro runs or workers
    python benchmarks/faults.py --only pairs-out-of-range --markdown out.md
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Case:
    key: str
    fault: str
    harm: str  # before the fix: "lost" or "wrong"
    handling: str
    tests: tuple[str, ...]
    slow: bool = False


DEG = "tests/test_degenerate_inputs.py::"
SAVE = "tests/pipelines/test_save_failures.py::"
DIST = "tests/test_distributed.py::"

CASES = (
    Case("valid-size-1.5", "`data.valid_size=1.5` (and 0, -1, 2.25)", "wrong",
         "ConfigError before the run: neither a fraction in (0, 1) nor a whole count",
         (DEG + "test_split_size_neither_fraction_nor_whole_count_is_refused",)),
    Case("one-image-split", "`data.valid_size=1` or `0.001`: a valid split of 0-1 images", "wrong",
         "DataError in data processing naming `data.valid_size`: every split needs 2 images of 2 classes",
         (DEG + "test_a_valid_split_of_fewer_than_two_images_is_refused_naming_the_key",)),
    Case("train-limit-5", "`data.train_limit=5` (10 classes)", "lost",
         "DataError in data processing naming `data.train_limit`: classes without a training image",
         (DEG + "test_a_train_limit_that_leaves_classes_untrained_is_refused_naming_the_key",)),
    Case("version-folder", "version folder not creatable (a file or an immutable entry at `warmed_supernet.pt`)",
         "lost", "StorageError before any node, naming `<filepath>/<version>`",
         (SAVE + "test_preflight_checks_the_version_folder_the_save_will_write",)),
    Case("version-folder-full", "a tiny disk mounted at the artifact's folder", "lost",
         "StorageError before any node (free space measured in the version folder)",
         (SAVE + "test_preflight_measures_free_space_where_the_version_folder_is",)),
    Case("save-after-stage", "disk full when Kedro saves `warmed_supernet` after the WarmUp", "lost",
         "the finished stage's checkpoint is kept; the same `kedro run` again saves only",
         (SAVE + "test_a_failed_artifact_save_leaves_the_finished_stage_resumable",), slow=True),
    Case("mlartifacts", "`mlartifacts/` not writable", "lost", "StorageError before any node",
         (SAVE + "test_an_unwritable_mlflow_artifact_folder_fails_before_any_node",), slow=True),
    Case("json-csv-enospc", "disk full mid-file writing `final_genotype.json` / a CSV", "lost",
         "StorageError; no new (truncated) version, no temporary file; the previous version loads",
         ("tests/pipelines/test_datasets.py::test_a_full_disk_mid_write_leaves_no_new_version",
          "tests/pipelines/test_datasets.py::test_every_catalog_entry_writes_atomically")),
    Case("sigterm-two-processes", "SIGTERM to `kedro run` during a 2-process Gloo WarmUp", "wrong",
         "MLflow run KILLED (`interrupted by SIGTERM`), lock released",
         ("tests/pipelines/test_run_guard.py::test_sigterm_during_a_two_process_warmup_ends_the_run_killed",),
         slow=True),
    Case("signal-launch-parent", "SIGTERM / Ctrl-C to the parent of a 2-process launch", "wrong",
         "the process's own handler gets the signal; its handlers are back afterwards",
         (DIST + "test_a_signal_to_the_parent_of_a_launch_reaches_its_own_handler",), slow=True),
    Case("sigstop-rank", "rank 1 of 2 stopped with SIGSTOP", "wrong",
         "WorkerError names rank 1 (its heartbeat went silent), not rank 0 that timed out",
         (DIST + "test_a_stopped_rank_is_the_rank_named",), slow=True),
    Case("rendezvous-interfaces", "single-node rendezvous store on every interface", "wrong",
         "the launching process listens on 127.0.0.1 only",
         (DIST + "test_a_single_node_launch_listens_on_the_loopback_only",), slow=True),
    Case("pairs-out-of-range", "pairs with 250 % and -5 %", "wrong", "DataError naming the row",
         (DEG + "test_impossible_accuracies_are_refused_naming_the_row",)),
    Case("stored-splits-differ", "`--params data.image_size=12` on stored 8x8 splits", "wrong",
         "DataError naming the key; split settings that differ recorded as `data_used.*` tags",
         (DEG + "test_data_parameters_that_disagree_with_the_stored_splits_are_refused_or_recorded",)),
    Case("world-size-resume", "WarmUp killed under 2 processes, resumed under 1", "wrong",
         "warning; the checkpoint and summary record both worlds (`worlds`)",
         ("tests/train/test_warmup.py::test_a_warmup_resumed_under_another_world_records_both",)),
    Case("nan-checkpoint", "a diverging run, and a truncated in-progress checkpoint", "wrong",
         "no NaN checkpoint written (TrainingError); NaN or corrupt files refused with how to recover",
         (SAVE + "test_a_diverged_state_is_never_checkpointed_and_a_nan_file_is_refused_with_a_way_out",)),
    Case("stale-tmp", "0-byte `.tmp` left by a kill during a write", "wrong",
         "removed (with the empty version folder) before the next run, under the lock",
         (SAVE + "test_temporary_files_of_killed_writes_are_removed_before_the_run",)),
    Case("prune-dead-lock", "`kedro prune --apply` after a run killed with SIGKILL", "wrong",
         "the dead run's lock is taken over (a live one still refuses)",
         ("tests/pipelines/test_logs_and_cli.py::test_prune_lists_then_removes_old_versions_and_waits_for_a_run",),
         slow=True),
    Case("empty-class-folder", "an empty class folder in an image tree", "wrong", "DataError naming the folder",
         (DEG + "test_an_empty_class_folder_is_an_error_naming_it",)),
    Case("empty-genotype", "an empty or truncated `final_genotype.json`", "wrong",
         "one line naming the file and how to fall back (no traceback)",
         ("tests/pipelines/test_logs_and_cli.py::test_an_empty_or_truncated_artifact_is_one_line_naming_its_file",)),
)


def run_cases(cases: list[Case]) -> dict[str, bool]:
    """Run the cases' tests in one pytest session; {case key: handled}."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        ids = [test for case in cases for test in case.tests]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
               "KEDRO_DISABLE_TELEMETRY": "true"}
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                        *ids], cwd=ROOT, env=env, check=False)
        outcome: dict[str, bool] = {}
        for testcase in ET.parse(report).getroot().iter("testcase"):
            name = f"{testcase.get('classname', '').replace('.', '/')}.py::{testcase.get('name', '')}"
            failed = any(child.tag in ("failure", "error") for child in testcase)
            skipped = any(child.tag == "skipped" for child in testcase)
            outcome[name] = outcome.get(name, True) and not failed and not skipped
    handled = {}
    for case in cases:
        results = [ok for name, ok in outcome.items() if any(name.split("[")[0] == t for t in case.tests)]
        handled[case.key] = bool(results) and len(results) >= len(case.tests) and all(results)
    return handled


def table(cases: list[Case], handled: dict[str, bool]) -> str:
    lines = ["| case | before | now | result |", "|---|---|---|---|"]
    for case in cases:
        result = "handled" if handled[case.key] else f"NOT handled ({case.harm})"
        lines.append(f"| {case.fault} | {case.harm} | {case.handling} | {result} |")
    tried = len(cases)
    ok = sum(handled[c.key] for c in cases)
    lost = sum(not handled[c.key] and c.harm == "lost" for c in cases)
    wrong = sum(not handled[c.key] and c.harm == "wrong" for c in cases)
    lines.append("")
    lines.append(f"tried {tried}, handled {ok}, lost {lost}, silently wrong {wrong}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="skip the cases that start kedro runs or workers")
    parser.add_argument("--only", nargs="+", metavar="KEY", help=f"run these cases: {[c.key for c in CASES]}")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    cases = [c for c in CASES if (not args.fast or not c.slow) and (not args.only or c.key in args.only)]
    unknown = set(args.only or ()) - {c.key for c in CASES}
    if unknown:
        parser.error(f"unknown case(s) {sorted(unknown)}")
    result = table(cases, run_cases(cases))
    print(result)
    if args.markdown:
        args.markdown.write_text(result + "\n")
    return 0 if all(line.endswith("| handled |") for line in result.splitlines()[2:2 + len(cases)]) else 1


if __name__ == "__main__":
    sys.exit(main())
