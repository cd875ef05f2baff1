from kedro.pipeline import Pipeline, node

from wpnas.pipelines.warmup.nodes import warmup


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                warmup,
                inputs=["image_splits", "params:run", "params:space", "params:warmup"],
                outputs=["warmed_supernet", "warmup_summary"],
                name="warmup_supernet",
            )
        ]
    )
