"""The fault battery of issue 23: every fault and bad input that lost work or recorded a wrong
result, tried again, with the table of docs/reliability.md ("Fault cases: save-time failures, ...") as its output.

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


#: One case a row: key | harm before the fix | fast or slow (starts kedro runs or workers) | the fault |
#: how it is handled now | its tests (DEG:, SAVE:, DIST: abbreviate the three test files most cases live in).
CASE_TABLE = """
valid-size-1.5 | wrong | fast | `data.valid_size=1.5` (and 0, -1, 2.25) | ConfigError before the run: neither a fraction in (0, 1) nor a whole count | DEG:test_split_size_neither_fraction_nor_whole_count_is_refused
one-image-split | wrong | fast | `data.valid_size=1` or `0.001`: a valid split of 0-1 images | DataError in data processing naming `data.valid_size`: every split needs 2 images of 2 classes | DEG:test_a_valid_split_of_fewer_than_two_images_is_refused_naming_the_key
train-limit-5 | lost | fast | `data.train_limit=5` (10 classes) | DataError in data processing naming `data.train_limit`: classes without a training image | DEG:test_a_train_limit_that_leaves_classes_untrained_is_refused_naming_the_key
version-folder | lost | fast | version folder not creatable (a file or an immutable entry at `warmed_supernet.pt`) | StorageError before any node, naming `<filepath>/<version>` | SAVE:test_preflight_checks_the_version_folder_the_save_will_write
version-folder-full | lost | fast | a tiny disk mounted at the artifact's folder | StorageError before any node (free space measured in the version folder) | SAVE:test_preflight_measures_free_space_where_the_version_folder_is
save-after-stage | lost | slow | disk full when Kedro saves `warmed_supernet` after the WarmUp | the finished stage's checkpoint is kept; the same `kedro run` again saves only | SAVE:test_a_failed_artifact_save_leaves_the_finished_stage_resumable
mlartifacts | lost | slow | `mlartifacts/` not writable | StorageError before any node | SAVE:test_an_unwritable_mlflow_artifact_folder_fails_before_any_node
json-csv-enospc | lost | fast | disk full mid-file writing `final_genotype.json` / a CSV | StorageError; no new (truncated) version, no temporary file; the previous version loads | tests/pipelines/test_datasets.py::test_a_full_disk_mid_write_leaves_no_new_version tests/pipelines/test_datasets.py::test_every_catalog_entry_writes_atomically
sigterm-two-processes | wrong | slow | SIGTERM to `kedro run` during a 2-process Gloo WarmUp | MLflow run KILLED (`interrupted by SIGTERM`), lock released | tests/pipelines/test_run_guard.py::test_sigterm_during_a_two_process_warmup_ends_the_run_killed
signal-launch-parent | wrong | slow | SIGTERM / Ctrl-C to the parent of a 2-process launch | the process's own handler gets the signal; its handlers are back afterwards | DIST:test_a_signal_to_the_parent_of_a_launch_reaches_its_own_handler
sigstop-rank | wrong | slow | rank 1 of 2 stopped with SIGSTOP | WorkerError names rank 1 (its heartbeat went silent), not rank 0 that timed out | DIST:test_a_stopped_rank_is_the_rank_named
rendezvous-interfaces | wrong | slow | single-node rendezvous store on every interface | the launching process listens on 127.0.0.1 only | DIST:test_a_single_node_launch_listens_on_the_loopback_only
pairs-out-of-range | wrong | fast | pairs with 250 % and -5 % | DataError naming the row | DEG:test_impossible_accuracies_are_refused_naming_the_row
stored-splits-differ | wrong | fast | `--params data.image_size=12` on stored 8x8 splits | DataError naming the key; split settings that differ recorded as `data_used.*` tags | DEG:test_data_parameters_that_disagree_with_the_stored_splits_are_refused_or_recorded
world-size-resume | wrong | fast | WarmUp killed under 2 processes, resumed under 1 | warning; the checkpoint and summary record both worlds (`worlds`) | tests/train/test_warmup.py::test_a_warmup_resumed_under_another_world_records_both
nan-checkpoint | wrong | fast | a diverging run, and a truncated in-progress checkpoint | no NaN checkpoint written (TrainingError); NaN or corrupt files refused with how to recover | SAVE:test_a_diverged_state_is_never_checkpointed_and_a_nan_file_is_refused_with_a_way_out
stale-tmp | wrong | fast | 0-byte `.tmp` left by a kill during a write | removed (with the empty version folder) before the next run, under the lock | SAVE:test_temporary_files_of_killed_writes_are_removed_before_the_run
prune-dead-lock | wrong | slow | `kedro prune --apply` after a run killed with SIGKILL | the dead run's lock is taken over (a live one still refuses) | tests/pipelines/test_logs_and_cli.py::test_prune_lists_then_removes_old_versions_and_waits_for_a_run
empty-class-folder | wrong | fast | an empty class folder in an image tree | DataError naming the folder | DEG:test_an_empty_class_folder_is_an_error_naming_it
empty-genotype | wrong | fast | an empty or truncated `final_genotype.json` | one line naming the file and how to fall back (no traceback) | tests/pipelines/test_logs_and_cli.py::test_an_empty_or_truncated_artifact_is_one_line_naming_its_file
"""

PREFIXES = {"DEG:": "tests/test_degenerate_inputs.py::", "SAVE:": "tests/pipelines/test_save_failures.py::",
            "DIST:": "tests/test_distributed.py::"}


def _test_id(short: str) -> str:
    for prefix, path in PREFIXES.items():
        if short.startswith(prefix):
            return path + short[len(prefix):]
    return short


def parse_cases(text: str) -> tuple[Case, ...]:
    cases = []
    for line in text.strip().splitlines():
        key, harm, speed, fault, handling, tests = (part.strip() for part in line.split(" | "))
        cases.append(Case(key, fault, harm, handling, tuple(_test_id(t) for t in tests.split()), speed == "slow"))
    return tuple(cases)


CASES = parse_cases(CASE_TABLE)


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
