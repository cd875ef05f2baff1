"""Which pipelines exist and how they compose (steps 1-4 = ``search``; the default adds step 5 and the report)."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from wpnas.pipelines.ablation import create_pipeline as ablation
from wpnas.pipelines.data_processing import create_pipeline as data_processing
from wpnas.pipelines.evaluation import create_pipeline as evaluation
from wpnas.pipelines.ground_truth import create_pipeline as ground_truth
from wpnas.pipelines.landmark_phase import create_pipeline as landmark_phase
from wpnas.pipelines.latency import create_pipeline as latency
from wpnas.pipelines.predictor import create_pipeline as predictor
from wpnas.pipelines.predictor_benchmark import create_pipeline as predictor_benchmark
from wpnas.pipelines.reporting import create_pipeline as reporting
from wpnas.pipelines.search import create_pipeline as search
from wpnas.pipelines.warmup import create_pipeline as warmup


def all_pipelines() -> dict[str, Pipeline]:
    dp = data_processing()
    wu = warmup()
    gt = ground_truth()
    pr = predictor()
    lp = landmark_phase()
    se = search()
    pipelines = {
        "data_processing": dp,
        "warmup": wu,
        "ground_truth": gt,
        "predictor": pr,
        # The WarmUp continued with the landmark term on the ground truth (the search's SuperNet).
        "landmark_phase": lp,
        # Everything after the predictor: the landmark phase, the search and the final selection
        # (the best of a candidate pool by the ground-truth method).
        "wpnas_search": lp + se,
        "predictor_benchmark": predictor_benchmark(),
        # Beyond the paper: the space's latency table on latency.device (docs/latency.md); a search with
        # search.wpnas.reward.cost: latency or search.max_latency_ms reads the newest one.
        "latency": latency(),
        # Paper step 5: train the search's final_genotype from scratch, score it on test.
        "evaluation": evaluation(),
        # summary.md and figures from the run's artifacts (needs evaluation_metrics).
        "reporting": reporting(),
        # Paper Table 1 on one data split, every row over several seeds.
        "ablation": dp + ablation(),
        # Paper steps 1-4 in one run: WarmUp, ground truth, landmark phase, predictor, search, selection.
        "search": dp + wu + gt + lp + pr + se,
    }
    # `kedro run`: the whole procedure, from data to the found network trained and reported.
    pipelines["__default__"] = pipelines["search"] + pipelines["evaluation"] + pipelines["reporting"]
    return pipelines
