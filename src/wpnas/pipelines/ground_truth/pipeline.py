from kedro.pipeline import Pipeline, node

from wpnas.pipelines.ground_truth.nodes import acquire_ground_truth


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                acquire_ground_truth,
                inputs=["warmed_supernet", "image_splits", "params:run", "params:space", "params:ground_truth"],
                outputs=["arch_accuracy_pairs", "ground_truth_summary"],
                name="acquire_ground_truth",
            )
        ]
    )
