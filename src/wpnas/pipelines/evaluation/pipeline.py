from kedro.pipeline import Pipeline, node

from wpnas.pipelines.evaluation.nodes import evaluate_final_model


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                evaluate_final_model,
                inputs=["final_genotype", "image_splits", "params:run", "params:space", "params:evaluation"],
                outputs=["final_model", "final_model_script", "evaluation_metrics"],
                name="evaluate_final_model",
            )
        ]
    )
