from kedro.pipeline import Pipeline, node

from wpnas.pipelines.landmark_phase.nodes import landmark_warmup


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                landmark_warmup,
                inputs=["warmed_supernet", "arch_accuracy_pairs", "ground_truth_summary", "image_splits", "params:run",
                        "params:space", "params:warmup", "params:landmark_phase"],
                outputs=["landmark_supernet", "landmark_summary"],
                name="landmark_warmup",
            )
        ]
    )
