from kedro.pipeline import Pipeline, node

from wpnas.pipelines.latency.nodes import build_latency_table


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                build_latency_table,
                inputs=["params:run", "params:space", "params:data", "params:latency", "params:evaluation"],
                outputs="latency_table",
                name="build_latency_table",
            )
        ]
    )
