"""Nodes of the predictor_benchmark pipeline."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from wpnas import tracking
from wpnas.pipelines.params import predictor_benchmark_config
from wpnas.predictors.table2 import run_table2


def predictor_table2(predictor_benchmark: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    result = run_table2(predictor_benchmark_config(predictor_benchmark))
    for rec in result.summary.itertuples():
        name = re.sub(r"[^A-Za-z0-9_\-. /]+", "_", f"table2/{rec.space}/{rec.row}")
        tracking.log_metrics(
            {"tau_valid": rec.tau_valid_mean, "pearson_valid": rec.pearson_valid_mean,
             "mse_valid": rec.mse_valid_mean, "tau_rest": rec.tau_rest_mean},
            prefix=f"{name}/",
        )
    tracking.log_metrics({"table2/seconds": result.seconds})
    return result.runs, result.summary, result.markdown
