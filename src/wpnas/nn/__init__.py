"""Generic network building blocks: candidate ops and width/offset-aware layers, BN recalibration, the FLOPs counter."""
