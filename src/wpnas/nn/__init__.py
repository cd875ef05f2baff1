"""Network building blocks: candidate ops, SuperNets, HyperNet (weakly weight sharing)."""
