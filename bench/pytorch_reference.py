#!/usr/bin/env python3
"""PyTorch reference for `widesweep bench train`: the same Wide Residual
Network (Zagoruyko & Komodakis, BMVC 2016, arXiv:1605.07146) and the same
training step (forward, cross-entropy, backward, SGD with Nesterov momentum
and weight decay), timed the same way, for a side-by-side images/s ratio.

It is a benchmark tool, never a test dependency. Install torch in a virtual
environment outside the repository:

    python3 -m venv /work/venv-torch && /work/venv-torch/bin/pip install torch numpy
    /work/venv-torch/bin/python bench/pytorch_reference.py --depth 16 --width 4 --batch-size 128 --threads 2

The model mirrors worker/src/wrn: pre-activation blocks of any pattern
(--block 3,3 or 1,3,1 ...), one shared BN-ReLU before the split when the
channel count changes, a 1x1 projection shortcut only there, dropout between
convolutions, the official initialisation (He-normal convolutions and
classifier, BN gamma U(0, 1), zero biases).
"""

import argparse
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, width, kernels, stride, dropout):
        super().__init__()
        self.bns = nn.ModuleList()
        self.convs = nn.ModuleList()
        c = cin
        for i, k in enumerate(kernels):
            self.bns.append(nn.BatchNorm2d(c))
            self.convs.append(nn.Conv2d(c, width, k, stride if i == 0 else 1, k // 2, bias=False))
            c = width
        self.shortcut = nn.Conv2d(cin, width, 1, stride, 0, bias=False) if cin != width else None
        self.dropout = dropout

    def forward(self, x):
        out = x
        shortcut = None
        for i, (bn, conv) in enumerate(zip(self.bns, self.convs)):
            a = F.relu(bn(out))
            if i == 0:
                shortcut = self.shortcut(a) if self.shortcut is not None else x
            elif self.dropout > 0:
                a = F.dropout(a, self.dropout, self.training)
            out = conv(a)
        return out + shortcut


class Wrn(nn.Module):
    def __init__(self, kernels, n, k, dropout, in_channels, classes):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        blocks = []
        c = 16
        for g, width in enumerate([16 * k, 32 * k, 64 * k]):
            for b in range(n):
                stride = 2 if (g > 0 and b == 0) else 1
                blocks.append(Block(c, width, kernels, stride, dropout))
                c = width
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(c)
        self.fc = nn.Linear(c, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.uniform_(m.weight, 0.0, 1.0)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        x = F.relu(self.bn(x))
        return self.fc(x.mean(dim=(2, 3)))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--block", default="3,3", help="kernel sizes of a block, e.g. 3,3 or 1,3,1")
    p.add_argument("--depth", type=int, help="3 * N * l + 4")
    p.add_argument("--blocks-per-group", type=int)
    p.add_argument("--width", "-k", type=int, required=True)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--in-channels", type=int, default=3)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    p.add_argument(
        "--precision",
        choices=["f32", "bf16"],
        default="f32",
        help="f32 (TF32 tensor-core convolutions allowed on CUDA, PyTorch's default) "
        "or bf16 autocast (weights and optimizer state in f32)",
    )
    p.add_argument(
        "--print-losses", action="store_true", help="print every step's loss (warm-up included), one per line"
    )
    a = p.parse_args()

    kernels = [int(k) for k in a.block.split(",")]
    n = a.blocks_per_group or (a.depth - 4) // (3 * len(kernels))
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    device = torch.device(a.device)
    model = Wrn(kernels, n, a.width, a.dropout, a.in_channels, a.classes).to(device).train()
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x_host = torch.rand(a.batch_size, a.in_channels, 32, 32) - 0.5
    y_host = torch.randint(0, a.classes, (a.batch_size,))

    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=a.precision == "bf16")
    losses = []

    def step():
        # Host-to-device copies each step, as in widesweep's bench.
        x, y = x_host.to(device), y_host.to(device)
        with autocast:
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())  # waits for the device, as widesweep's bench does

    for _ in range(a.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(a.steps):
        step()
    seconds = time.perf_counter() - start
    if device.type == "cuda":
        peak = f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB (device, allocated)"
    else:
        peak = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB (peak RSS)"
    name = f"WRN-{3 * n * len(kernels) + 4}-{a.width} B({a.block})"
    print(
        f"pytorch {torch.__version__} {name} ({params:,} parameters) batch {a.batch_size} on {a.device}"
        f" {a.precision} threads {torch.get_num_threads()}: {a.steps * a.batch_size / seconds:.1f} images/s,"
        f" {1e3 * seconds / a.steps:.1f} ms/step, peak memory {peak}"
        f" ({a.steps} timed steps after {a.warmup} warm-up)"
    )
    print(f"loss {losses[0]:.4f} at step 1, {losses[-1]:.4f} at step {len(losses)}")
    if a.print_losses:
        for i, loss in enumerate(losses):
            print(f"step {i + 1} loss {loss:.6f}")


if __name__ == "__main__":
    main()
