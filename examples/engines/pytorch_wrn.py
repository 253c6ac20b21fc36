"""Wide Residual Networks in PyTorch as a widesweep command engine.

The same network family and recipe as widesweep's built-in candle engine,
so that one sweep can compare the two cell by cell
(``engine = ["candle", "pytorch"]``, see examples/engines/candle-vs-pytorch.toml):

- WRN-n-k with any block pattern (B(3,3), B(3,1,3), B(1,3,1), B(1,3),
  B(3,1), B(3,1,1), B(3,3,3), ...), pre-activation BN-ReLU-conv, widths
  16, 16k, 32k, 64k, strides 1, 2, 2, a 1x1 projection shortcut where the
  width changes, dropout between convolutions, BN-ReLU-pool-linear head;
- the recipe of the job (SGD with momentum and Nesterov, weight decay,
  step schedule at the milestones, batch size, epochs, train/test subsets,
  4-pixel reflect-padded random crops and horizontal flips);
- the datasets as widesweep reads them (CIFAR-10/100 python batches,
  Fashion-MNIST and MNIST idx files padded to 32x32, the same per-channel
  normalisation), from the worker's data directory.

Data order and initialisation are seeded from the job's seed and epoch with
PyTorch's generators, not candle's: the two engines train the same cells
from different random streams, so their comparison is statistical (seeds),
not bit for bit.

It checkpoints after every epoch (model, optimizer, epoch) and resumes from
the checkpoint widesweep hands it. Requires torch; run it through a sweep:
the worker starts it with ``WIDESWEEP_JOB_FILE`` and ``WIDESWEEP_SOCKET``.
"""

from __future__ import annotations

import gzip
import pickle
import re
import tarfile
import time
from pathlib import Path
from typing import List, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import widesweep

# Per-channel statistics on the 0-255 scale, as widesweep's worker uses them.
NORMALISATION = {
    "cifar10": ([125.3, 123.0, 113.9], [63.0, 62.1, 66.7]),
    "cifar100": ([125.3, 123.0, 113.9], [63.0, 62.1, 66.7]),
    "fashion-mnist": ([0.2860 * 255], [0.3530 * 255]),
    "mnist": ([0.1307 * 255], [0.3081 * 255]),
}
CLASSES = {"cifar10": 10, "cifar100": 100, "fashion-mnist": 10, "mnist": 10}


def kernels(block: str) -> List[int]:
    """B(1,3,1) -> [1, 3, 1]."""
    match = re.fullmatch(r"B\(([13](?:,[13])*)\)", block.replace(" ", ""))
    if not match:
        raise widesweep.DoNotRetry(f"block {block!r} is not a pattern of 1s and 3s such as B(3,3)")
    return [int(k) for k in match.group(1).split(",")]


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, pattern: List[int], dropout: float) -> None:
        super().__init__()
        self.bns = nn.ModuleList()
        self.convs = nn.ModuleList()
        channels = cin
        for i, k in enumerate(pattern):
            self.bns.append(nn.BatchNorm2d(channels))
            self.convs.append(nn.Conv2d(channels, cout, k, stride if i == 0 else 1, k // 2, bias=False))
            channels = cout
        self.shortcut = nn.Conv2d(cin, cout, 1, stride, 0, bias=False) if cin != cout else None
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = F.relu(self.bns[0](x))
        # A changing width projects the pre-activated input, as the
        # official WRN (and widesweep's plan) does.
        skip = self.shortcut(first) if self.shortcut is not None else x
        out = self.convs[0](first)
        for bn, conv in zip(self.bns[1:], self.convs[1:]):
            out = F.relu(bn(out))
            if self.dropout > 0:
                out = F.dropout(out, self.dropout, self.training)
            out = conv(out)
        return out + skip


class WideResNet(nn.Module):
    def __init__(self, network: dict, in_channels: int, classes: int) -> None:
        super().__init__()
        k, n = network["width"], network["blocks_per_group"]
        pattern = kernels(network["block"])
        self.stem = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        layers = []
        channels = 16
        for group, width in enumerate([16 * k, 32 * k, 64 * k]):
            for i in range(n):
                stride = (1 if group == 0 else 2) if i == 0 else 1
                layers.append(Block(channels, width, stride, pattern, network["dropout"]))
                channels = width
        self.blocks = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(channels)
        self.fc = nn.Linear(channels, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.blocks(self.stem(x))))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(dataset: str, data_dir: Path) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Images as uint8 N x C x 32 x 32 and labels, train then test."""
    if dataset in ("mnist", "fashion-mnist"):
        directory = data_dir / dataset
        if not directory.exists():
            directory = Path("/usr/share/datasets") / dataset
        def images(name: str) -> np.ndarray:
            raw = read_idx(directory / name)
            return np.pad(raw, ((0, 0), (2, 2), (2, 2)))[:, None]
        return (
            images("train-images-idx3-ubyte.gz"),
            read_idx(directory / "train-labels-idx1-ubyte.gz").astype(np.int64),
            images("t10k-images-idx3-ubyte.gz"),
            read_idx(directory / "t10k-labels-idx1-ubyte.gz").astype(np.int64),
        )
    archive = data_dir / ("cifar-10-python.tar.gz" if dataset == "cifar10" else "cifar-100-python.tar.gz")
    label_key = b"labels" if dataset == "cifar10" else b"fine_labels"
    train_names = [f"data_batch_{i}" for i in range(1, 6)] if dataset == "cifar10" else ["train"]
    batches = {}
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            name = Path(member.name).name
            if name in train_names or name in ("test_batch", "test"):
                batches[name] = pickle.load(tar.extractfile(member), encoding="bytes")  # type: ignore[arg-type]
    def split(names: List[str]) -> Tuple[np.ndarray, np.ndarray]:
        x = np.concatenate([batches[n][b"data"] for n in names]).reshape(-1, 3, 32, 32)
        y = np.concatenate([np.asarray(batches[n][label_key]) for n in names]).astype(np.int64)
        return x, y
    test = ["test_batch"] if dataset == "cifar10" else ["test"]
    return split(train_names) + split(test)


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random 4-pixel reflect-padded crops and horizontal flips."""
    n = x.shape[0]
    padded = F.pad(x, (4, 4, 4, 4), mode="reflect")
    dy = torch.randint(0, 9, (n,), generator=generator)
    dx = torch.randint(0, 9, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    out = torch.empty_like(x)
    for i in range(n):
        crop = padded[i, :, dy[i] : dy[i] + 32, dx[i] : dx[i] + 32]
        out[i] = crop.flip(-1) if flip[i] else crop
    return out


def main() -> None:
    with widesweep.job() as job:
        recipe, network = job.recipe, job.network
        device = torch.device("cuda" if job.device.startswith("cuda") and torch.cuda.is_available() else "cpu")
        torch.manual_seed(job.seed)
        x_train, y_train, x_test, y_test = load(job.dataset, job.data_dir)
        if recipe["train_subset"]:
            x_train, y_train = x_train[: recipe["train_subset"]], y_train[: recipe["train_subset"]]
        if recipe["test_subset"]:
            x_test, y_test = x_test[: recipe["test_subset"]], y_test[: recipe["test_subset"]]
        mean, std = NORMALISATION[job.dataset]
        mean_t = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        std_t = torch.tensor(std, device=device).view(1, -1, 1, 1)
        normalise = lambda x: (x.to(device).float() - mean_t) / std_t  # noqa: E731
        x_train_t, x_test_t = torch.from_numpy(x_train), torch.from_numpy(x_test)
        y_train_t, y_test_t = torch.from_numpy(y_train).to(device), torch.from_numpy(y_test).to(device)

        model = WideResNet(network, x_train.shape[1], CLASSES[job.dataset]).to(device)
        optimizer = torch.optim.SGD(
            model.parameters(),
            lr=recipe["lr"],
            momentum=recipe["momentum"],
            nesterov=recipe["nesterov"],
            weight_decay=recipe["weight_decay"],
        )
        start = 1
        if job.resume_checkpoint is not None:
            state = torch.load(job.resume_checkpoint, map_location=device)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            start = state["epoch"] + 1
        batch = recipe["batch_size"]
        for epoch in range(start, job.epochs + 1):
            began = time.perf_counter()
            drops = sum(1 for m in recipe["lr_milestones"] if epoch > m)
            lr = recipe["lr"] * recipe["lr_gamma"] ** drops
            for group in optimizer.param_groups:
                group["lr"] = lr
            generator = torch.Generator().manual_seed(job.seed * 1_000_003 + epoch)
            order = torch.randperm(len(y_train), generator=generator)
            model.train()
            loss_sum, wrong, seen = 0.0, 0, 0
            for at in range(0, len(order), batch):
                idx = order[at : at + batch]
                x = x_train_t[idx].float()
                if recipe["augment"]:
                    x = augment(x, generator)
                logits = model(normalise(x))
                loss = F.cross_entropy(logits, y_train_t[idx.to(device)])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.item() * len(idx)
                wrong += (logits.argmax(1) != y_train_t[idx.to(device)]).sum().item()
                seen += len(idx)
            train_seconds = time.perf_counter() - began
            model.eval()
            test_loss, test_wrong = 0.0, 0
            with torch.no_grad():
                for at in range(0, len(y_test), 500):
                    logits = model(normalise(x_test_t[at : at + 500]))
                    target = y_test_t[at : at + 500]
                    test_loss += F.cross_entropy(logits, target, reduction="sum").item()
                    test_wrong += (logits.argmax(1) != target).sum().item()
            job.report(
                epoch,
                train_loss=loss_sum / seen,
                train_error=wrong / seen,
                test_loss=test_loss / len(y_test),
                test_error=test_wrong / len(y_test),
                lr=lr,
                epoch_seconds=time.perf_counter() - began,
                images_per_second=seen / train_seconds,
            )
            path = job.job_dir / "state.pt"
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch}, path)
            job.checkpoint(path)
            if job.should_stop:
                return


if __name__ == "__main__":
    main()
