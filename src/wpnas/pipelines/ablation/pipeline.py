from kedro.pipeline import Pipeline, node

from wpnas.pipelines.ablation import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(nodes.ablation_warmup_uniform, ["image_splits", "params:run", "params:space", "params:warmup",
                                        "params:ablation"], "ablation_warmed_uniform", name="ablation_warmup_uniform"),
            node(nodes.ablation_ground_truth, ["ablation_warmed_uniform", "image_splits", "params:run", "params:space",
                                      "params:ground_truth", "params:ablation"], "ablation_pairs",
                 name="ablation_ground_truth"),
            node(nodes.ablation_predictors, ["ablation_pairs", "params:run", "params:space", "params:predictor",
                                    "params:ablation"], "ablation_predictors", name="ablation_predictors"),
            node(nodes.ablation_warmup_landmark, ["ablation_pairs", "image_splits", "params:run", "params:space",
                                         "params:warmup", "params:ablation"], "ablation_warmed_landmark",
                 name="ablation_warmup_landmark"),
            node(nodes.ablation_rows, ["ablation_warmed_uniform", "ablation_warmed_landmark", "ablation_pairs",
                              "ablation_predictors", "image_splits", "params:run", "params:space", "params:search",
                              "params:ablation", "params:ground_truth"], "ablation_results", name="ablation_rows"),
            node(nodes.ablation_references, ["ablation_pairs", "ablation_predictors", "params:run", "params:space",
                                    "params:ablation"], "ablation_references", name="ablation_references"),
            node(nodes.ablation_table1, ["ablation_results", "ablation_references", "params:space", "params:ablation"],
                 ["table1", "table1_markdown"], name="ablation_table1"),
        ]
    )
