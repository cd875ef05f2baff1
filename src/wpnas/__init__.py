"""WPNAS: neural architecture search jointly using weight sharing and a few-shot predictor.

The package is a plain PyTorch/NumPy library (`wpnas.spaces`, `wpnas.nn`, `wpnas.data`,
`wpnas.train`, `wpnas.predictors`, `wpnas.search`, `wpnas.nasbench`, `wpnas.io`) plus thin
Kedro glue (`wpnas.pipelines`, `wpnas.settings`, `wpnas.pipeline_registry`).
"""

__version__ = "0.1.0"
