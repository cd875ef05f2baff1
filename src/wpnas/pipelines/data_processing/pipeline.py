from kedro.pipeline import Pipeline, node

from wpnas.pipelines.data_processing.nodes import prepare_image_splits


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                prepare_image_splits,
                inputs="params:data",
                outputs=["image_splits", "dataset_summary"],
                name="prepare_image_splits",
            )
        ]
    )
