"""The job side of widesweep's command engine.

A widesweep worker runs a sweep's training command once per job, with two
environment variables: ``WIDESWEEP_JOB_FILE`` (the job as JSON) and
``WIDESWEEP_SOCKET`` (a Unix socket in the job's own directory, its channel
to the worker). Each message is a JSON line, and the worker answers each
with one line: ``{"ok": true, "stop": false}``, or ``{"ok": false,
"error": "..."}``. The worker holds the lease and its secret; the command
never sees a credential.

    import widesweep

    with widesweep.job() as job:
        model = build(job.network, job.params)
        start = 1
        if job.resume_checkpoint:
            start = load(job.resume_checkpoint) + 1
        for epoch in range(start, job.epochs + 1):
            metrics = train_one_epoch(model, job.recipe, epoch)
            job.report(epoch, **metrics)
            if job.should_stop or epoch % 5 == 0:
                save(model, "state.ckpt")
                job.checkpoint("state.ckpt")
            if job.should_stop:
                break
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Dict, Optional, Type

#: The protocol this package speaks; the worker refuses another.
PROTOCOL = 1

#: Exit status meaning "this job fails the same way every time: do not
#: retry it". ``raise widesweep.DoNotRetry(...)`` inside ``widesweep.job()``
#: exits with it.
EXIT_DO_NOT_RETRY = 3


class ProtocolError(RuntimeError):
    """The worker refused a message (the error says why), or the channel broke."""


class DoNotRetry(Exception):
    """Raise inside ``widesweep.job()`` for a failure that another attempt
    would repeat (a parameter the trainer refuses, a run that diverged)."""


class Job:
    """One attempt of a job, as the worker described it.

    Attributes:
        job_id, attempt, sweep, cell_hash, engine, seed, epochs, dataset:
            what the job is.
        network: the WRN cell (block, deepening, blocks_per_group, depth,
            width, dropout); a trainer of another model may ignore it.
        recipe: every recipe field (lr, lr_milestones, momentum, ...).
        params: the cell's free-form parameters (``[grid.params]``).
        resume_checkpoint: the file of the newest checkpoint an earlier
            attempt handed over, or None; ``resume_epoch`` its epoch (0: none).
        job_dir: this attempt's private directory (mode 0700), for
            checkpoints and scratch files; removed when the attempt ends.
        data_dir: the worker's dataset directory.
        device: "cpu" or "cuda:N" (CUDA_VISIBLE_DEVICES holds only it).
    """

    def __init__(self, description: Dict[str, Any], channel: Optional[socket.socket]) -> None:
        self.description = description
        self.job_id: int = description["job_id"]
        self.attempt: int = description["attempt"]
        self.sweep: str = description["sweep"]
        self.cell_hash: str = description["cell_hash"]
        self.engine: str = description["engine"]
        self.seed: int = description["seed"]
        self.epochs: int = description["epochs"]
        self.dataset: str = description["dataset"]
        self.network: Dict[str, Any] = description["network"]
        self.recipe: Dict[str, Any] = description["recipe"]
        self.params: Dict[str, Any] = description["params"]
        resume = description.get("resume")
        self.resume_checkpoint: Optional[Path] = Path(resume["checkpoint"]) if resume else None
        self.resume_epoch: int = resume["epoch"] if resume else 0
        self.job_dir = Path(description["job_dir"])
        self.data_dir = Path(description["data_dir"])
        self.device: str = description["device"]
        self._channel = channel
        self._reader = channel.makefile("r", encoding="utf-8") if channel else None
        self._stop_requested = False
        self._last_epoch: Optional[int] = None

    @property
    def should_stop(self) -> bool:
        """True once the worker asked the job to checkpoint and exit (SIGTERM,
        SIGUSR1, the allocation's deadline). The job is handed back without
        spending an attempt and resumes from its newest checkpoint."""
        return self._stop_requested

    def report(
        self,
        epoch: int,
        *,
        train_loss: float,
        train_error: float,
        test_loss: float,
        test_error: float,
        lr: float,
        epoch_seconds: float,
        images_per_second: float = 0.0,
    ) -> None:
        """Reports a finished epoch (1-based). Errors are fractions in [0, 1]."""
        self._send(
            {
                "type": "epoch",
                "epoch": int(epoch),
                "train_loss": float(train_loss),
                "train_error": float(train_error),
                "test_loss": float(test_loss),
                "test_error": float(test_error),
                "lr": float(lr),
                "epoch_seconds": float(epoch_seconds),
                "images_per_second": float(images_per_second),
            }
        )
        self._last_epoch = int(epoch)

    def checkpoint(self, path: "os.PathLike[str] | str", epoch: Optional[int] = None) -> None:
        """Hands over the state saved at ``path`` after ``epoch`` (default: the
        last reported). The worker uploads it before this returns; the file may
        be deleted or overwritten afterwards."""
        if epoch is None:
            if self._last_epoch is None:
                raise ValueError("checkpoint() before any report(): give the epoch")
            epoch = self._last_epoch
        self._send({"type": "checkpoint", "epoch": int(epoch), "path": str(Path(path).resolve())})

    def heartbeat(self) -> None:
        """Tells the worker the job is alive during a long epoch (within the
        engine's ``heartbeat_seconds``, or the worker kills it as hung)."""
        self._send({"type": "heartbeat"})

    def _send(self, message: Dict[str, Any]) -> None:
        if self._channel is None or self._reader is None:
            raise ProtocolError("this job has no channel to its worker")
        try:
            self._channel.sendall((json.dumps(message) + "\n").encode())
            line = self._reader.readline()
        except OSError as error:
            raise ProtocolError(f"the channel to the worker broke: {error}") from error
        if not line:
            raise ProtocolError("the worker closed the channel")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise ProtocolError(f"the worker refused {message['type']}: {reply.get('error')}")
        if reply.get("stop"):
            self._stop_requested = True

    def _request_stop(self, signum: int, frame: Optional[FrameType]) -> None:
        self._stop_requested = True

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        if self._channel is not None:
            self._channel.close()
        self._channel = None
        self._reader = None

    def __enter__(self) -> "Job":
        return self

    def __exit__(
        self,
        kind: Optional[Type[BaseException]],
        error: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> Optional[bool]:
        self.close()
        if isinstance(error, DoNotRetry):
            print(f"widesweep: job {self.job_id} failed, not to be retried: {error}", file=sys.stderr)
            sys.stderr.flush()
            os._exit(EXIT_DO_NOT_RETRY)
        return None


def job(job_file: Optional[str] = None, socket_path: Optional[str] = None) -> Job:
    """The job this process was started for, connected to its worker.

    Reads ``WIDESWEEP_JOB_FILE`` and ``WIDESWEEP_SOCKET`` unless given, says
    hello (the worker checks the protocol), and makes SIGTERM and SIGUSR1 set
    ``job.should_stop`` instead of killing the process, so that the trainer
    can checkpoint first.
    """
    job_file = job_file or os.environ.get("WIDESWEEP_JOB_FILE")
    socket_path = socket_path or os.environ.get("WIDESWEEP_SOCKET")
    if not job_file or not socket_path:
        raise RuntimeError(
            "not started by a widesweep worker: WIDESWEEP_JOB_FILE and WIDESWEEP_SOCKET are unset "
            "(run the script through a sweep with [engine] command = [...])"
        )
    with open(job_file, encoding="utf-8") as f:
        description = json.load(f)
    if description.get("protocol") != PROTOCOL:
        raise ProtocolError(
            f"the worker speaks protocol {description.get('protocol')}, this package {PROTOCOL}: "
            "install the widesweep package of the worker's version (pip install ./python)"
        )
    channel = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    deadline = time.monotonic() + 10
    while True:
        try:
            channel.connect(socket_path)
            break
        except OSError as error:
            if time.monotonic() > deadline:
                raise ProtocolError(f"cannot reach the worker at {socket_path}: {error}") from error
            time.sleep(0.05)
    current = Job(description, channel)
    current._send({"type": "hello", "protocol": PROTOCOL, "client": f"widesweep-python {_version()}"})
    for signum in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(signum, current._request_stop)
    return current


def _version() -> str:
    from . import __version__

    return __version__
