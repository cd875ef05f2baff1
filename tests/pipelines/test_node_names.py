"""Every node is named after its function (`kedro run --nodes=<name>` names what runs), and the
search node does not name a method."""

from wpnas.pipeline_registry import register_pipelines


def test_node_names_equal_their_functions():
    pipelines = register_pipelines()
    nodes = {node.name: node for pipeline in pipelines.values() for node in pipeline.nodes}
    assert {name: node.func.__name__ for name, node in nodes.items() if name != node.func.__name__} == {}
    assert "search_architecture" in nodes and not any("wpnas" in name for name in nodes)
