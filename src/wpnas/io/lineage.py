"""Lineage of a run's results: which run each artifact came from, and the check that the
artifacts a report reads belong together.

Each stage that feeds the report stamps what it made with fingerprints (16 hex digits, see
:mod:`wpnas.fingerprint`) under the key ``lineage``:

- ``predictor_metrics``: the predictor it describes (``predictor``, also stored in the
  ``predictor_weights`` checkpoint as ``fingerprint``), the pairs it was trained on
  (``arch_accuracy_pairs``) and its held-out predictions (``predictor_validation``);
- ``final_genotype``: the search that found it (``search``), its alpha table
  (``alpha_trajectory``), and the pairs and predictor the search was given;
- ``evaluation_metrics``: the genotype it trained (``final_genotype``, a hash of the
  genotype's whole content).

:func:`check_report_inputs` follows these links. Inputs of different runs (a genotype of
seed 1 with the evaluation of seed 0's genotype, pairs of a later ground-truth run, ...)
are refused with one message naming each mismatch, before anything is drawn or written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from wpnas.errors import DataError
from wpnas.fingerprint import content_fingerprint, fingerprint
from wpnas.io.pairs import pairs_fingerprint

__all__ = [
    "LINEAGE",
    "check_report_inputs",
    "evaluation_lineage",
    "genotype_fingerprint",
    "predictor_fingerprint",
    "report_sources",
    "search_lineage",
    "stamp_predictor",
    "table_fingerprint",
]

LINEAGE = "lineage"

#: What to run again when a link is broken (named in the refusal).
_HINT = ("run the stages again in one run (`kedro run`), or name matching versions with "
         "`kedro run --pipelines=reporting --load-versions=<entry>:<version>,...`")


def _cell(value: Any) -> Any:
    """One table cell as a CSV round trip keeps it: a number rounded to 1e-6, a missing value
    None, anything else its text."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(number):
        return None
    return round(number, 6) if math.isfinite(number) else str(number)


def table_fingerprint(frame: pd.DataFrame | None) -> str | None:
    """A hash of a table's column names and cells (numbers to 1e-6, so the same table saved
    as CSV and read back keeps its fingerprint). None for no table."""
    if frame is None:
        return None
    columns = [str(c) for c in frame.columns]
    rows = [[_cell(v) for v in row] for row in frame.itertuples(index=False, name=None)]
    return content_fingerprint({"columns": columns, "rows": rows})


def genotype_fingerprint(genotype: Mapping[str, Any]) -> str:
    """A hash of a final genotype's whole content (as its JSON file holds it)."""
    return fingerprint(dict(genotype))


def predictor_fingerprint(checkpoint: Mapping[str, Any] | None) -> str | None:
    """The fingerprint a ``predictor_weights`` checkpoint carries (None: none, or an old file)."""
    if not isinstance(checkpoint, Mapping):
        return None
    return checkpoint.get("fingerprint")


def stamp_predictor(checkpoint: dict[str, Any], metrics: dict[str, Any], pairs: pd.DataFrame,
                    predictions: pd.DataFrame) -> tuple[dict[str, Any], dict[str, Any]]:
    """The predictor stage's two records, each stamped: the checkpoint with the pairs it was
    trained on and its own fingerprint; the metrics with the lineage of the same predictor."""
    pairs_record = pairs_fingerprint(pairs)
    weights = {k: v for k, v in checkpoint.items() if k not in ("inputs", "fingerprint")}
    own = content_fingerprint({"weights": weights, "pairs": pairs_record["fingerprint"]})
    stamped = {**checkpoint, "inputs": {"arch_accuracy_pairs": pairs_record}, "fingerprint": own}
    lineage = {"predictor": own, "arch_accuracy_pairs": pairs_record["fingerprint"],
               "predictor_validation": table_fingerprint(predictions)}
    return stamped, {**metrics, LINEAGE: lineage}


def search_lineage(search_fingerprint: str | None, trajectory: pd.DataFrame, pairs: pd.DataFrame | None,
                   predictor_weights: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``lineage`` of a final genotype: the search run, its alpha table, and the pairs and
    predictor the search was given."""
    return {
        "search": search_fingerprint,
        "alpha_trajectory": table_fingerprint(trajectory),
        "arch_accuracy_pairs": None if pairs is None else pairs_fingerprint(pairs)["fingerprint"],
        "predictor": predictor_fingerprint(predictor_weights),
    }


def evaluation_lineage(genotype: Mapping[str, Any]) -> dict[str, Any]:
    """The ``lineage`` of evaluation metrics: the genotype that was trained."""
    return {"final_genotype": genotype_fingerprint(genotype)}


def _lineage(artifact: Any, name: str) -> Mapping[str, Any]:
    found = artifact.get(LINEAGE) if isinstance(artifact, Mapping) else None
    if not isinstance(found, Mapping):
        raise DataError(f"{name} carries no lineage (written by an older wpnas, or edited): it cannot be shown to "
                        f"belong to the same run as the other report inputs; {_HINT}")
    return found


def check_report_inputs(
    genotype: Mapping[str, Any],
    evaluation: Mapping[str, Any] | None = None,
    trajectory: pd.DataFrame | None = None,
    predictor_metrics: Mapping[str, Any] | None = None,
    predictor_validation: pd.DataFrame | None = None,
    pairs: pd.DataFrame | None = None,
) -> None:
    """Raise :class:`DataError` unless every input given came from the run of ``genotype``
    (inputs left None are not checked). The message names every broken link."""
    found = _lineage(genotype, "final_genotype")
    problems: list[str] = []
    if evaluation is not None:
        trained = _lineage(evaluation, "evaluation_metrics").get("final_genotype")
        if evaluation.get("arch") != genotype.get("arch") or evaluation.get("space") != genotype.get("space"):
            problems.append(f"evaluation_metrics trained {evaluation.get('space')} `{evaluation.get('arch')}`, "
                            f"final_genotype is {genotype.get('space')} `{genotype.get('arch')}` "
                            f"(search seed {genotype.get('seed', '?')})")
        elif trained != genotype_fingerprint(genotype):
            problems.append(f"evaluation_metrics trained a genotype with fingerprint {trained}, final_genotype has "
                            f"{genotype_fingerprint(genotype)} (same architecture, another search)")
    if trajectory is not None and table_fingerprint(trajectory) != found.get("alpha_trajectory"):
        problems.append(f"alpha_trajectory has fingerprint {table_fingerprint(trajectory)}, the search of "
                        f"final_genotype wrote {found.get('alpha_trajectory')}")
    if pairs is not None:
        have = pairs_fingerprint(pairs)["fingerprint"]
        if have != found.get("arch_accuracy_pairs"):
            problems.append(f"arch_accuracy_pairs has fingerprint {have}, the search of final_genotype was given "
                            f"{found.get('arch_accuracy_pairs')}")
    if predictor_metrics is not None:
        described = _lineage(predictor_metrics, "predictor_metrics")
        if described.get("predictor") != found.get("predictor"):
            problems.append(f"predictor_metrics describe predictor {described.get('predictor')}, the search of "
                            f"final_genotype was given predictor {found.get('predictor')}")
        if predictor_validation is not None:
            have = table_fingerprint(predictor_validation)
            if have != described.get("predictor_validation"):
                problems.append(f"predictor_validation has fingerprint {have}, predictor_metrics were computed on "
                                f"{described.get('predictor_validation')}")
    if problems:
        raise DataError("the report's inputs come from different runs: " + "; ".join(problems) + f". {_HINT}")


def report_sources(genotype: Mapping[str, Any], evaluation: Mapping[str, Any] | None = None,
                   predictor_metrics: Mapping[str, Any] | None = None) -> list[tuple[str, str]]:
    """(input, where it came from) for the report's "Sources" section, after the check passed."""
    found = genotype.get(LINEAGE) or {}
    rows = [("final_genotype", f"search {found.get('search')} (seed {genotype.get('seed', '?')}, "
                               f"{genotype.get('epochs', '?')} epochs); genotype {genotype_fingerprint(genotype)}")]
    rows.append(("alpha_trajectory", f"the same search ({found.get('alpha_trajectory')})"))
    if evaluation is not None:
        rows.append(("evaluation_metrics", f"trained genotype {(evaluation.get(LINEAGE) or {}).get('final_genotype')}"
                                           f" (seed {evaluation.get('seed', '?')})"))
    rows.append(("arch_accuracy_pairs", f"the pairs the search was given ({found.get('arch_accuracy_pairs')})"))
    if predictor_metrics is not None:
        rows.append(("predictor_metrics, predictor_validation", f"the predictor the search was given "
                                                                f"({found.get('predictor')})"))
    return rows
