from kedro.pipeline import Pipeline, node

from wpnas.pipelines.warmup.nodes import warmup_supernet


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                warmup_supernet,
                inputs=["image_splits", "params:run", "params:space", "params:warmup"],
                outputs=["warmed_supernet", "warmup_summary"],
                name="warmup_supernet",
            )
        ]
    )
