"""The job side of the protocol against a stand-in worker: a Unix socket
that records each message and answers as a worker does."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

import widesweep

SRC = Path(__file__).resolve().parents[1] / "src"


class FakeWorker:
    """Accepts one connection; answers each line with `reply(message)`."""

    def __init__(self, directory: Path, stop_after: int = 10**9) -> None:
        self.path = directory / "channel.sock"
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(self.path))
        self.server.listen(1)
        self.messages: List[Dict[str, Any]] = []
        self.stop_after = stop_after
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        with conn, conn.makefile("rw", encoding="utf-8") as stream:
            for line in stream:
                message = json.loads(line)
                self.messages.append(message)
                if message.get("epoch") == 99:
                    reply = {"ok": False, "error": "reported epoch 99, past the job's last (3)"}
                else:
                    reply = {"ok": True, "stop": len(self.messages) > self.stop_after}
                stream.write(json.dumps(reply) + "\n")
                stream.flush()


def describe(directory: Path, resume: bool = False) -> Path:
    checkpoint = directory / "resume.ckpt"
    checkpoint.write_bytes(b"state")
    description = {
        "protocol": widesweep.PROTOCOL,
        "job_id": 7,
        "attempt": 2,
        "sweep": "s",
        "cell_hash": "ab" * 32,
        "engine": "command",
        "seed": 3,
        "epochs": 3,
        "dataset": "fashion-mnist",
        "network": {"block": "B(3,3)", "deepening": 2, "blocks_per_group": 1, "depth": 10, "width": 1, "dropout": 0.0},
        "recipe": {"lr": 0.1, "epochs": 3},
        "params": {"mixup": 0.2},
        "resume": {"checkpoint": str(checkpoint), "epoch": 1} if resume else None,
        "job_dir": str(directory),
        "socket": str(directory / "channel.sock"),
        "data_dir": "/data",
        "device": "cpu",
        "deadline_unix_ms": None,
    }
    path = directory / "job.json"
    path.write_text(json.dumps(description))
    return path


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[Path]:
    # A Unix socket's path must be short: pytest's tmp_path can be long.
    short = Path("/tmp") / f"ws-{os.getpid()}-{tmp_path.name[-12:]}"
    short.mkdir()
    yield short
    shutil.rmtree(short)


def metrics(epoch: int) -> Dict[str, float]:
    return dict(train_loss=0.5, train_error=0.2, test_loss=0.6, test_error=0.25, lr=0.1, epoch_seconds=1.5)


def test_a_job_says_hello_reports_and_hands_over_checkpoints(directory: Path) -> None:
    worker = FakeWorker(directory)
    with widesweep.job(str(describe(directory, resume=True)), str(worker.path)) as job:
        assert (job.job_id, job.attempt, job.seed, job.epochs) == (7, 2, 3, 3)
        assert job.params == {"mixup": 0.2} and job.network["width"] == 1
        assert job.resume_epoch == 1 and job.resume_checkpoint == directory / "resume.ckpt"
        job.report(2, **metrics(2))
        (directory / "state.ckpt").write_bytes(b"x")
        job.checkpoint(directory / "state.ckpt")
        job.heartbeat()
        assert not job.should_stop
    hello, epoch, checkpoint, heartbeat = worker.messages
    assert hello == {"type": "hello", "protocol": widesweep.PROTOCOL, "client": f"widesweep-python {widesweep.__version__}"}
    assert epoch["type"] == "epoch" and epoch["epoch"] == 2 and epoch["test_error"] == 0.25
    assert epoch["images_per_second"] == 0.0
    assert checkpoint == {"type": "checkpoint", "epoch": 2, "path": str((directory / "state.ckpt").resolve())}
    assert heartbeat == {"type": "heartbeat"}


def test_a_stop_in_a_reply_or_a_signal_sets_should_stop(directory: Path) -> None:
    worker = FakeWorker(directory, stop_after=1)
    with widesweep.job(str(describe(directory)), str(worker.path)) as job:
        job.report(1, **metrics(1))
        assert job.should_stop, "the second message's reply asked to stop"
    second = directory / "second"
    second.mkdir()
    worker = FakeWorker(second)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        with widesweep.job(str(describe(directory)), str(worker.path)) as job:
            os.kill(os.getpid(), signal.SIGTERM)
            assert job.should_stop, "SIGTERM asks the job to stop instead of killing it"
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)


def test_a_refused_message_raises_with_the_worker_s_reason(directory: Path) -> None:
    worker = FakeWorker(directory)
    with widesweep.job(str(describe(directory)), str(worker.path)) as job:
        with pytest.raises(widesweep.ProtocolError, match="past the job's last"):
            job.report(99, **metrics(99))
        with pytest.raises(ValueError, match="give the epoch"):
            job.checkpoint(directory / "job.json")


def test_outside_a_worker_the_error_says_how_to_run_it() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIDESWEEP_")}
    env["PYTHONPATH"] = str(SRC)
    out = subprocess.run([sys.executable, "-c", "import widesweep; widesweep.job()"], env=env, capture_output=True, text=True)
    assert out.returncode != 0
    assert "WIDESWEEP_JOB_FILE" in out.stderr and "[engine] command" in out.stderr


def test_do_not_retry_exits_with_the_documented_status(directory: Path) -> None:
    worker = FakeWorker(directory)
    script = (
        "import widesweep\n"
        "with widesweep.job() as job:\n"
        "    raise widesweep.DoNotRetry('lr=10 diverges')\n"
    )
    env = dict(os.environ, PYTHONPATH=str(SRC), WIDESWEEP_JOB_FILE=str(describe(directory)), WIDESWEEP_SOCKET=str(worker.path))
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert out.returncode == widesweep.EXIT_DO_NOT_RETRY == 3
    assert "lr=10 diverges" in out.stderr


def test_another_protocol_is_a_clear_error(directory: Path) -> None:
    path = describe(directory)
    description = json.loads(path.read_text())
    description["protocol"] = widesweep.PROTOCOL + 1
    path.write_text(json.dumps(description))
    with pytest.raises(widesweep.ProtocolError, match="install the widesweep package of the worker's version"):
        widesweep.job(str(path), str(directory / "channel.sock"))
