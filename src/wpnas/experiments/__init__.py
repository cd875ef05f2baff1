"""Experiments that combine the stages: the Table 1 ablation (``wpnas.experiments.ablation``)."""
