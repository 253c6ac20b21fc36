#!/usr/bin/env python3
"""PyTorch reference for precise batch norm: the test error of a briefly
trained WRN as trained, and again after its BN running statistics are
re-estimated on training batches, for comparison with widesweep's own
re-estimation in BENCHMARKS.md.

The claim it checks: with this recipe (WRN-10-2, one epoch on 20,000
Fashion-MNIST images) the test error is 31-37 % over three seeds, and
21.6-22.7 % for the same weights once the statistics are re-estimated.

It is a benchmark tool, never a test dependency. Install torch in a virtual
environment outside the repository, then run it from the repository root:

    python3 -m venv /work/venv-torch && /work/venv-torch/bin/pip install torch numpy
    /work/venv-torch/bin/python bench/precise_bn_reference.py --seeds 1,2,3 --threads 1

What it mirrors of widesweep (worker/src/data, worker/src/train/trainer.rs):

- data: Debian's Fashion-MNIST (/usr/share/datasets/fashion-mnist, the
  gzipped IDX files), each 28x28 image zero-padded by 2 pixels on each side
  to 32x32, one channel, normalised as (x - 0.2860 * 255) / (0.3530 * 255)
  on the 0-255 scale (`Normalisation::of(FashionMnist)`); no augmentation.
- subset: the first --train-subset images of one fixed permutation of the
  60,000 training images, the same for every seed. widesweep draws its
  permutation from its own ChaCha8 stream, this script from
  numpy.random.RandomState(0): the same size of subset, not the same images.
- recipe: SGD with Nesterov momentum 0.9, weight decay 5e-4 on every
  parameter, constant lr, batch 128, batches in a per-epoch order drawn from
  the seed, the last partial batch dropped; evaluation on all 10,000 test
  images in batches of 250, in eval mode.
- model: `Wrn` of bench/pytorch_reference.py (pre-activation blocks B(3,3),
  the official initialisation); WRN-10-2 is n = 1 block per group, k = 2.
  BN momentum 0.1 and unbiased running variance, as widesweep's.

Re-estimation (b): every BN layer's running statistics are reset (mean 0,
variance 1) and its momentum set to None, so that PyTorch keeps the plain
average over batches of the per-batch mean and unbiased variance; then
--recalibration-batches batches of --batch-size un-augmented images of the
training subset, in an order drawn from the seed, go through the model in
train mode under torch.no_grad() (no weight changes, dropout is 0), and the
model is evaluated again. A comma-separated list (10,50,200) re-estimates
from the same trained weights once per count; the batches of a smaller
count are the first ones of a larger, so each count's result does not
depend on which others are asked for.
"""

import argparse
import copy
import gzip
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_reference import Wrn  # noqa: E402

DATA_DIR = "/usr/share/datasets/fashion-mnist"
# Published training-set statistics of Fashion-MNIST, as widesweep's `Normalisation::of`.
MEAN, STD = 0.2860 * 255.0, 0.3530 * 255.0
EVAL_BATCH = 250
SIDE, PADDED = 28, 32


def read_split(data_dir, prefix):
    """Images [n, 1, 32, 32] normalised f32 and labels int64, as widesweep reads them."""
    with gzip.open(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz")) as f:
        raw = f.read()
    magic, n, rows, cols = np.frombuffer(raw[:16], dtype=">u4")
    assert (magic, rows, cols) == (2051, SIDE, SIDE), (magic, rows, cols)
    images = np.frombuffer(raw[16:], dtype=np.uint8).reshape(n, SIDE, SIDE)
    with gzip.open(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz")) as f:
        raw = f.read()
    magic, n_labels = np.frombuffer(raw[:8], dtype=">u4")
    assert (magic, n_labels) == (2049, n), (magic, n_labels)
    labels = np.frombuffer(raw[8:], dtype=np.uint8)
    assert labels.max() <= 9
    pad = (PADDED - SIDE) // 2
    padded = np.zeros((n, 1, PADDED, PADDED), dtype=np.float32)
    padded[:, 0, pad : pad + SIDE, pad : pad + SIDE] = images  # zero is the background
    normalised = (padded - np.float32(MEAN)) * np.float32(1.0 / STD)
    return torch.from_numpy(normalised), torch.from_numpy(labels.astype(np.int64))


@torch.no_grad()
def test_error(model, images, labels):
    model.eval()
    wrong = 0
    for i in range(0, len(labels), EVAL_BATCH):
        logits = model(images[i : i + EVAL_BATCH])
        wrong += (logits.argmax(dim=1) != labels[i : i + EVAL_BATCH]).sum().item()
    return 100.0 * wrong / len(labels)


def train(model, images, labels, seed, epochs, batch, lr):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    order_rng = torch.Generator().manual_seed(seed)
    steps = len(labels) // batch  # the last partial batch is dropped
    losses = []
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(labels), generator=order_rng)
        for s in range(steps):
            idx = order[s * batch : (s + 1) * batch]
            loss = F.cross_entropy(model(images[idx]), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return losses


@torch.no_grad()
def reestimate_bn(model, images, labels, seed, batches, batch):
    """Exact average of the BN statistics over `batches` training batches."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: every batch weighs the same
    model.train()
    rng = torch.Generator().manual_seed(10_000 + seed)
    # Whole permutations of the subset back to back, so that any count of
    # batches is possible and a smaller count takes the first batches of a larger.
    need = batches * batch
    order = torch.cat([torch.randperm(len(labels), generator=rng) for _ in range(-(-need // len(labels)))])
    for s in range(batches):
        model(images[order[s * batch : (s + 1) * batch]])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--train-subset", type=int, default=20_000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument(
        "--recalibration-batches",
        default="50",
        help="training batches to re-estimate BN on; a comma-separated list for several counts",
    )
    p.add_argument("--depth", type=int, default=10, help="3 * 2 * n + 4 with blocks B(3,3)")
    p.add_argument("--width", "-k", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    p.add_argument("--data-dir", default=DATA_DIR)
    a = p.parse_args()

    seeds = [int(s) for s in a.seeds.split(",")]
    counts = [int(c) for c in a.recalibration_batches.split(",")]
    if a.threads:
        torch.set_num_threads(a.threads)
    started = time.perf_counter()

    train_all, train_labels_all = read_split(a.data_dir, "train")
    test_images, test_labels = read_split(a.data_dir, "t10k")
    subset = np.random.RandomState(0).permutation(len(train_labels_all))[: a.train_subset]
    subset = torch.from_numpy(subset)
    train_images, train_labels = train_all[subset].contiguous(), train_labels_all[subset].contiguous()
    del train_all, train_labels_all

    n = (a.depth - 4) // 6
    name = f"WRN-{a.depth}-{a.width}"
    print(
        f"pytorch {torch.__version__}, threads {torch.get_num_threads()}; {name} B(3,3), Fashion-MNIST "
        f"{len(train_labels)} training images (RandomState(0) subset, zero-padded 28->32, "
        f"mean {MEAN:.3f} std {STD:.3f}, no augmentation), {a.epochs} epoch(s), batch {a.batch_size}, "
        f"lr {a.lr} constant, SGD nesterov 0.9, wd 5e-4; test on {len(test_labels)} images",
        flush=True,
    )

    results = []  # (seed, as trained, {count: after})
    for seed in seeds:
        t0 = time.perf_counter()
        torch.manual_seed(seed)
        model = Wrn([3, 3], n, a.width, 0.0, 1, 10)
        losses = train(model, train_images, train_labels, seed, a.epochs, a.batch_size, a.lr)
        trained = test_error(model, test_images, test_labels)
        after = {}
        for c in counts:
            m = copy.deepcopy(model)
            reestimate_bn(m, train_images, train_labels, seed, c, a.batch_size)
            after[c] = test_error(m, test_images, test_labels)
        results.append((seed, trained, after))
        reest = ", ".join(f"{after[c]:.2f} % after re-estimating BN on {c} batches of {a.batch_size}" for c in counts)
        print(
            f"seed {seed}: test error {trained:.2f} % as trained, {reest}"
            f" (train loss {losses[0]:.3f} first step, {np.mean(losses[-20:]):.3f} mean of last 20;"
            f" {time.perf_counter() - t0:.0f} s)",
            flush=True,
        )

    def span(values):
        return f"{min(values):.2f}-{max(values):.2f} % (mean {np.mean(values):.2f})"

    print(f"summary over seeds {a.seeds}: as trained {span([r[1] for r in results])}")
    for c in counts:
        print(f"  after re-estimating BN on {c} batches of {a.batch_size}: {span([r[2][c] for r in results])}")
    print(f"wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
