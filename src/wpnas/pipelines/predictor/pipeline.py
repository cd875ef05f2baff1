from kedro.pipeline import Pipeline, node

from wpnas.pipelines.predictor.nodes import train_predictor


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                train_predictor,
                inputs=["arch_accuracy_pairs", "params:run", "params:space", "params:predictor"],
                outputs=["predictor_weights", "predictor_metrics", "predictor_validation"],
                name="train_predictor",
            )
        ]
    )
