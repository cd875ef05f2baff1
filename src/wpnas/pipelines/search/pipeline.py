from kedro.pipeline import Pipeline, node

from wpnas.pipelines.search.nodes import search_node


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                search_node,
                inputs=["warmed_supernet", "predictor_weights", "arch_accuracy_pairs", "image_splits", "params:run", "params:space",
                        "params:search", "ground_truth_summary"],
                outputs=["searched_supernet", "alpha_trajectory", "alpha_heatmap", "final_genotype"],
                name="wpnas_search",
            )
        ]
    )
