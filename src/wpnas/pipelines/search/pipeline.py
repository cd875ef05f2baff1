from kedro.pipeline import Pipeline, node

from wpnas.pipelines.search.nodes import search_architecture, select_final_architecture


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                search_architecture,
                inputs=["landmark_supernet", "predictor_weights", "arch_accuracy_pairs", "image_splits", "params:run",
                        "params:space", "params:search", "ground_truth_summary", "params:latency",
                        "params:evaluation"],
                outputs=["searched_supernet", "alpha_trajectory", "alpha_heatmap", "search_genotype"],
                name="search_architecture",
            ),
            node(
                select_final_architecture,
                inputs=["search_genotype", "predictor_weights", "arch_accuracy_pairs", "warmed_supernet", "image_splits",
                        "params:run", "params:space", "params:search", "params:ground_truth", "ground_truth_summary",
                        "params:latency", "params:evaluation"],
                outputs=["final_genotype", "selection_candidates"],
                name="select_final_architecture",
            ),
        ]
    )
