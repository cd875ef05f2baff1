from kedro.pipeline import Pipeline, node

from wpnas.pipelines.evaluation.nodes import evaluation_node


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                evaluation_node,
                inputs=["final_genotype", "image_splits", "params:run", "params:space", "params:evaluation"],
                outputs=["final_model", "final_model_script", "evaluation_metrics"],
                name="evaluate_final_model",
            )
        ]
    )
