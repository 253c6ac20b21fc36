"""A small trainer for widesweep's command engine (and its tests): a one-hidden-layer
MLP in numpy learning real Fashion-MNIST, speaking widesweep's protocol.

Deterministic: the initialisation comes from the job's seed and each
epoch's data order from (seed, epoch), and a checkpoint holds the whole
state (weights, momentum), so a run resumed from a checkpoint ends with the
same numbers as an uninterrupted one.

The job's params choose the model and inject faults for the tests:
- hidden (int, default 32): hidden units;
- sleep (float, default 0): seconds to pause after each epoch;
- fault (str): crash | do_not_retry | hang | ignore_stop | garbage | twice |
  past_last | exit_early (default: none);
- check_env (bool): fail unless the only WIDESWEEP_* variables it sees are
  the job file and the socket (the worker's token must not reach it).
"""

from __future__ import annotations

import gzip
import os
import signal
import sys
import time
from pathlib import Path
from typing import Tuple

import numpy as np

import widesweep


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(directory: Path, train_subset: int, test_subset: int) -> Tuple[np.ndarray, ...]:
    def split(images: str, labels: str, limit: int) -> Tuple[np.ndarray, np.ndarray]:
        x = read_idx(directory / images).reshape(-1, 784).astype(np.float64) / 255.0
        y = read_idx(directory / labels).astype(np.int64)
        if limit:
            x, y = x[:limit], y[:limit]
        return (x - 0.2860) / 0.3530, y

    train = split("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", train_subset)
    test = split("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", test_subset)
    return train + test


def forward(params: dict, x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    hidden = np.maximum(x @ params["w1"] + params["b1"], 0.0)
    return hidden, hidden @ params["w2"] + params["b2"]


def loss_and_error(logits: np.ndarray, y: np.ndarray) -> Tuple[float, float, np.ndarray]:
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted)
    probs /= probs.sum(axis=1, keepdims=True)
    loss = float(-np.log(probs[np.arange(len(y)), y] + 1e-12).mean())
    error = float((logits.argmax(axis=1) != y).mean())
    return loss, error, probs


def learning_rate(recipe: dict, epoch: int) -> float:
    drops = sum(1 for m in recipe["lr_milestones"] if epoch > m)
    return recipe["lr"] * recipe["lr_gamma"] ** drops


def main() -> None:
    with widesweep.job() as job:
        fault = job.params.get("fault", "none")
        if job.params.get("check_env"):
            leaked = sorted(k for k in os.environ if k.startswith("WIDESWEEP_") and k not in ("WIDESWEEP_JOB_FILE", "WIDESWEEP_SOCKET"))
            if leaked:
                raise widesweep.DoNotRetry(f"the worker's environment leaked into the command: {leaked}")
        pause = float(job.params.get("sleep", 0.0))
        recipe = job.recipe
        data_dir = Path(os.environ.get("FASHION_MNIST_DIR", job.data_dir / "fashion-mnist"))
        if not data_dir.exists():
            data_dir = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
        x_train, y_train, x_test, y_test = load(data_dir, recipe["train_subset"], recipe["test_subset"])
        hidden = int(job.params.get("hidden", 32))
        rng = np.random.default_rng(job.seed)
        params = {
            "w1": rng.normal(0.0, np.sqrt(2.0 / 784), (784, hidden)),
            "b1": np.zeros(hidden),
            "w2": rng.normal(0.0, np.sqrt(1.0 / hidden), (hidden, 10)),
            "b2": np.zeros(10),
        }
        velocity = {name: np.zeros_like(value) for name, value in params.items()}
        start = 1
        if job.resume_checkpoint is not None:
            state = np.load(job.resume_checkpoint)
            params = {name: state[name] for name in params}
            velocity = {name: state["v_" + name] for name in params}
            start = int(state["epoch"]) + 1
        if fault == "ignore_stop":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        batch = recipe["batch_size"]
        for epoch in range(start, job.epochs + 1):
            began = time.perf_counter()
            lr = learning_rate(recipe, epoch)
            order = np.random.default_rng([job.seed, epoch]).permutation(len(y_train))
            losses, errors = [], []
            for at in range(0, len(order), batch):
                idx = order[at : at + batch]
                x, y = x_train[idx], y_train[idx]
                h, logits = forward(params, x)
                loss, error, probs = loss_and_error(logits, y)
                losses.append(loss)
                errors.append(error)
                grad_logits = probs
                grad_logits[np.arange(len(y)), y] -= 1.0
                grad_logits /= len(y)
                grads = {"w2": h.T @ grad_logits, "b2": grad_logits.sum(axis=0)}
                grad_h = (grad_logits @ params["w2"].T) * (h > 0)
                grads["w1"] = x.T @ grad_h
                grads["b1"] = grad_h.sum(axis=0)
                for name in params:
                    g = grads[name] + recipe["weight_decay"] * params[name]
                    velocity[name] = recipe["momentum"] * velocity[name] + g
                    step = g + recipe["momentum"] * velocity[name] if recipe["nesterov"] else velocity[name]
                    params[name] = params[name] - lr * step
            test_loss, test_error, _ = loss_and_error(forward(params, x_test)[1], y_test)
            seconds = time.perf_counter() - began
            job.report(
                epoch,
                train_loss=float(np.mean(losses)),
                train_error=float(np.mean(errors)),
                test_loss=test_loss,
                test_error=test_error,
                lr=lr,
                epoch_seconds=seconds,
                images_per_second=len(order) / max(seconds, 1e-9),
            )
            state = job.job_dir / "state.npz"
            np.savez(state, epoch=epoch, **params, **{"v_" + k: v for k, v in velocity.items()})
            job.checkpoint(state)
            if fault == "crash":
                print("the trainer crashed on purpose", file=sys.stderr)
                raise RuntimeError("injected crash after epoch 1")
            if fault == "do_not_retry":
                raise widesweep.DoNotRetry("injected: this cell cannot train")
            if fault == "hang":
                time.sleep(3600)
            if fault == "garbage":
                job._channel.sendall(b"this is not json\n")  # type: ignore[union-attr]
                time.sleep(3600)
            if fault == "twice":
                job.report(epoch, train_loss=0.1, train_error=0.1, test_loss=0.1, test_error=0.1, lr=lr, epoch_seconds=1.0)
            if fault == "exit_early":
                return
            if fault == "ignore_stop":
                while True:
                    time.sleep(0.2)
            time.sleep(pause)
            if job.should_stop:
                return
        if fault == "past_last":
            job.report(job.epochs + 1, train_loss=0.1, train_error=0.1, test_loss=0.1, test_error=0.1, lr=0.1, epoch_seconds=1.0)


if __name__ == "__main__":
    main()
