from kedro.pipeline import Pipeline, node

from wpnas.pipelines.reporting.nodes import report_run


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                report_run,
                inputs=["final_genotype", "evaluation_metrics", "alpha_trajectory", "predictor_validation",
                        "predictor_metrics", "arch_accuracy_pairs", "params:latency", "params:evaluation"],
                outputs=["run_summary", "alpha_lines", "predictor_scatter", "accuracy_vs_flops"],
                name="report_run",
            )
        ]
    )
