"""How much ranking signal does the WPNAS reward's CE carry? (NATS-TSS / CIFAR-10)

For a warmed SuperNet checkpoint (e.g. written by ``search_tss.py --warmed PATH``), scores
a set of cells two ways and compares each with NB201 ``cifar10_valid_200ep``:

* reward CE: the reward pass exactly (BN on batch statistics), mean over ``--batches``
  validation batches of ``--batch-size`` images;
* the reward pass's CE on the same batches with the path's BN recalibrated instead (4 x 128
  training images, then eval mode);
* accuracy on the reward batches, BN on batch statistics (what an accuracy reward would see);
* inherited accuracy after BN recalibration (4 x 128 training images), on 2,000 valid images.

The cells: the all-skip cell, NB201's rank-3 cell and ``--archs`` random ones.

    python benchmarks/search_tss.py ... --warmup-epochs 90 --warmed /tmp/warm_90.pt
    python benchmarks/reward_signal.py /tmp/warm_90.pt --data /tmp/cifar10-jpeg
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from _common import NB201_TABLE, cifar10_tree
from wpnas.config import seed_everything
from wpnas.data.batching import DeviceBatches
from wpnas.data.sources import DataConfig, build_image_splits
from wpnas.io.checkpoints import load_checkpoint
from wpnas.io.supernet_checkpoint import restore_supernet
from wpnas.nasbench import BenchmarkTable, kendall_tau
from wpnas.search.reward import batch_statistics, path_cross_entropy
from wpnas.train.engine import Engine
from wpnas.train.evaluation import evaluate_architecture

FIXED = {
    "all skip": "|skip_connect~0|+|skip_connect~0|none~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
    "NB201 rank 3": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a warmed_supernet checkpoint of nats_tss")
    p.add_argument("--data", help="CIFAR-10 image folder (or .tar.gz); default: the shared JPEG tarball")
    p.add_argument("--table", default=str(NB201_TABLE))
    p.add_argument("--image-size", type=int, default=16)
    p.add_argument("--train-limit", type=int, default=20000)
    p.add_argument("--archs", type=int, default=28)
    p.add_argument("--batches", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=5)
    args = p.parse_args()

    seed_everything(0)
    splits = build_image_splits(DataConfig(source="image_folder", root=str(cifar10_tree(args.data)),
                                           image_size=args.image_size, train_limit=args.train_limit))
    net = restore_supernet(load_checkpoint(args.checkpoint), "cpu")
    space = net.space
    table = BenchmarkTable.from_csv(args.table, space)
    engine = Engine("cpu")
    vx, vy = splits.split("valid")
    reward_batches = DeviceBatches(vx, vy, splits.mean, splits.std, device="cpu", batch_size=args.batch_size,
                                   shuffle=True, seed=1).take(args.batches)
    evaluation = DeviceBatches.from_splits(splits, "valid", "cpu", 512, train=False, seed=0, limit=2000)
    calib = DeviceBatches.from_splits(splits, "train", "cpu", 128, train=False, shuffle=True, seed=1)
    archs = [space.from_string(s) for s in FIXED.values()]
    archs += space.sample_unique(np.random.default_rng(args.seed), args.archs)
    ce, ce_recal, batch_acc, acc, truth = [], [], [], [], []
    for arch in archs:
        net.train()
        with torch.no_grad(), batch_statistics(net):
            logits = [(net(x, arch), y) for x, y in reward_batches]
            ce.append(float(np.mean([float(path_cross_entropy(out, y)) for out, y in logits])))
            batch_acc.append(float(np.mean([float((out.argmax(1) == y).float().mean()) for out, y in logits])))
        calib.generator.manual_seed(1)
        acc.append(evaluate_architecture(net, arch, evaluation, engine, calib.take(4))["acc"])
        # the same reward batches with the path's BN recalibrated (the statistics just set; eval mode)
        with torch.no_grad():
            ce_recal.append(float(np.mean([float(path_cross_entropy(net(x, arch), y)) for x, y in reward_batches])))
        truth.append(table.lookup(arch, "cifar10_valid_200ep"))
    ce, ce_recal, batch_acc, acc, truth = map(np.asarray, (ce, ce_recal, batch_acc, acc, truth))
    print(f"cells: {len(archs)}  Kendall tau vs cifar10_valid_200ep:")
    print(f"  -(reward CE, BN batch statistics): {kendall_tau(-ce, truth):.3f}")
    print(f"  -(reward CE, BN recalibrated on 4 x 128 training images): {kendall_tau(-ce_recal, truth):.3f}")
    print(f"  accuracy on the reward batches, BN batch statistics: {kendall_tau(batch_acc, truth):.3f}")
    print(f"  inherited accuracy, BN recalibrated: {kendall_tau(acc, truth):.3f}")
    for i, name in enumerate(FIXED):
        print(f"  {name}: CE {ce[i]:.3f} (recalibrated {ce_recal[i]:.3f}), accuracy {acc[i]:.1f} %, "
              f"NB201 {truth[i]:.2f} %")
    print(f"  random cells: CE min {ce[2:].min():.3f} / median {np.median(ce[2:]):.3f}; "
          f"accuracy max {acc[2:].max():.1f} / median {np.median(acc[2:]):.1f}")


if __name__ == "__main__":
    main()
