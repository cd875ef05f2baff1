from kedro.pipeline import Pipeline, node

from wpnas.pipelines.predictor_benchmark.nodes import predictor_table2


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                predictor_table2,
                inputs="params:predictor_benchmark",
                outputs=["predictor_table2_runs", "predictor_table2", "predictor_table2_markdown"],
                name="predictor_table2",
            )
        ]
    )
