from kedro.pipeline import Pipeline, node

from wpnas.pipelines.latency.nodes import latency_table_node


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                latency_table_node,
                inputs=["params:run", "params:space", "params:data", "params:latency", "params:evaluation"],
                outputs="latency_table",
                name="build_latency_table",
            )
        ]
    )
