"""A coordinator from Python: submit specs, follow sweeps, and read results
and learning curves as records or pandas DataFrames.

    from widesweep import Client

    client = Client("https://coord-host:7070", token_file="user.token", tls_ca="ca.crt")
    client.submit("examples/quickstart.toml")
    client.wait("quickstart")
    frame = client.results("quickstart", frame=True)   # pandas, if installed

It speaks the coordinator's gRPC API (needs ``pip install './python[client]'``:
grpcio and protobuf). Records have the fields and values of ``widesweep
export --format jsonl``. A coordinator built from other .proto files is
refused with a clear error.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

try:
    import grpc
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "widesweep.Client needs grpcio and protobuf: pip install './python[client]'"
    ) from error

from . import __version__
from .v1 import PROTO_SHA256, sweep_pb2, sweep_pb2_grpc

Record = Dict[str, Any]


class VersionMismatch(RuntimeError):
    """The coordinator serves another version of the API than this package's."""


class Client:
    """A connection to a coordinator, with one role's token.

    Args:
        url: ``http://host:port`` or ``https://host:port`` (TLS).
        token: the bearer token (a user's to submit and steer, a viewer's to
            read); or ``token_file``; else ``WIDESWEEP_TOKEN``.
        tls_ca: the CA certificate (PEM file) of a coordinator whose
            certificate is not in the system's store.
        timeout: seconds per call.
    """

    def __init__(
        self,
        url: str,
        token: Optional[str] = None,
        *,
        token_file: Optional[Union[str, os.PathLike]] = None,
        tls_ca: Optional[Union[str, os.PathLike]] = None,
        timeout: float = 60.0,
    ) -> None:
        if token is None and token_file is not None:
            token = Path(token_file).read_text().strip()
        if token is None:
            token = os.environ.get("WIDESWEEP_TOKEN")
        self._metadata = [("authorization", f"Bearer {token}")] if token else []
        self._timeout = timeout
        if url.startswith("https://"):
            root = Path(tls_ca).read_bytes() if tls_ca else None
            self._channel = grpc.secure_channel(url[len("https://") :], grpc.ssl_channel_credentials(root))
        elif url.startswith("http://"):
            self._channel = grpc.insecure_channel(url[len("http://") :])
        else:
            raise ValueError(f"url {url!r} is invalid: use http://host:port or https://host:port")
        self._sweeps = sweep_pb2_grpc.SweepServiceStub(self._channel)
        self.coordinator_version = self._check_version()

    def _call(self, method: Any, request: Any) -> Any:
        try:
            return method(request, metadata=self._metadata, timeout=self._timeout)
        except grpc.RpcError as error:
            raise RuntimeError(f"{error.code().name}: {error.details()}") from None

    def _check_version(self) -> str:
        info = self._call(self._sweeps.GetVersion, sweep_pb2.GetVersionRequest())
        if info.proto_sha256 != PROTO_SHA256:
            raise VersionMismatch(
                f"the coordinator (widesweep {info.version}) serves API {info.proto_sha256[:12]}, "
                f"this package (widesweep {__version__}) speaks {PROTO_SHA256[:12]}: "
                "install the Python package of the coordinator's release (pip install ./python)"
            )
        return info.version

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def submit(
        self,
        spec: Union[str, os.PathLike],
        *,
        priority: int = 0,
        max_attempts: int = 0,
        allow_large: bool = False,
    ) -> Record:
        """Submits a spec (a path, or the TOML text itself); returns the counts
        of new, existing and dropped cells."""
        text = Path(spec).read_text() if _is_path(spec) else str(spec)
        request = sweep_pb2.SubmitSweepRequest(
            spec_toml=text, priority=priority, max_attempts=max_attempts, allow_large=allow_large
        )
        response = self._call(self._sweeps.SubmitSweep, request)
        return _message(response)

    def status(self, sweep: str) -> Record:
        """A sweep's state and job counts (pending, running, succeeded, ...)."""
        return _message(self._call(self._sweeps.GetSweep, sweep_pb2.GetSweepRequest(sweep=sweep)))

    def sweeps(self) -> List[Record]:
        response = self._call(self._sweeps.ListSweeps, sweep_pb2.ListSweepsRequest())
        return [_message(s) for s in response.sweeps]

    def pause(self, sweep: str) -> Record:
        return _message(self._call(self._sweeps.PauseSweep, sweep_pb2.SweepRef(sweep=sweep)))

    def resume(self, sweep: str) -> Record:
        return _message(self._call(self._sweeps.ResumeSweep, sweep_pb2.SweepRef(sweep=sweep)))

    def cancel(self, sweep: str) -> Record:
        return _message(self._call(self._sweeps.CancelSweep, sweep_pb2.SweepRef(sweep=sweep)))

    def wait(self, sweep: str, timeout: Optional[float] = None, poll: float = 1.0) -> Record:
        """Polls until no job of the sweep is pending or running; its status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.status(sweep)
            if status["pending"] == 0 and status["running"] == 0:
                return status
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"sweep {sweep!r} still has pending or running jobs after {timeout} s")
            time.sleep(poll)

    def results(self, sweep: str, *, frame: bool = False) -> Any:
        """One record per job, as ``widesweep export --format jsonl`` writes it;
        a pandas DataFrame with ``frame=True``."""
        records = [_job_record(row) for page in self._pages(sweep, False) for row in page.jobs]
        return _frame(records) if frame else records

    def epochs(self, sweep: str, *, frame: bool = False) -> Any:
        """One record per job and recorded epoch (the learning curves), as
        ``widesweep export --epochs --format jsonl`` writes them."""
        jobs: Dict[int, Record] = {}
        records: List[Record] = []
        for page in self._pages(sweep, True):
            for row in page.jobs:
                jobs[row.job_id] = _job_record(row)
            for epoch in page.epochs:
                record = dict(jobs[epoch.job_id])
                m = epoch.metrics
                record.update(
                    epoch=m.epoch,
                    train_loss=m.train_loss,
                    train_error=m.train_error,
                    test_loss=m.test_loss,
                    test_error=m.test_error,
                    epoch_lr=m.lr,
                    epoch_wall_seconds=m.epoch_seconds,
                    images_per_second=m.images_per_second,
                )
                records.append(record)
        return _frame(records) if frame else records

    def _pages(self, sweep: str, epochs: bool) -> Iterator[Any]:
        request = sweep_pb2.ListResultsRequest(sweep=sweep, include_epochs=epochs)
        try:
            yield from self._sweeps.ListResults(request, metadata=self._metadata, timeout=self._timeout)
        except grpc.RpcError as error:
            raise RuntimeError(f"{error.code().name}: {error.details()}") from None


def _is_path(spec: Union[str, os.PathLike]) -> bool:
    if isinstance(spec, os.PathLike):
        return True
    return "\n" not in spec and Path(spec).is_file()


def _message(message: Any) -> Record:
    """A message as a dict of Python values (64-bit integers stay ints, unlike
    protobuf's JSON mapping); an unset optional field is None."""
    record: Record = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if field.has_presence and field.message_type is None and not message.HasField(field.name):
            value = None
        elif field.message_type is not None and not _is_repeated(field):
            value = _message(value) if message.HasField(field.name) else None
        elif _is_repeated(field):
            value = [_message(v) if field.message_type is not None else v for v in value]
        record[field.name] = value
    return record


def _is_repeated(field: Any) -> bool:
    # protobuf 7 has `is_repeated`; older runtimes the label.
    if hasattr(field, "is_repeated"):
        return bool(field.is_repeated)
    return bool(field.label == field.LABEL_REPEATED)


def _optional(row: Any, field: str) -> Optional[Any]:
    return getattr(row, field) if row.HasField(field) else None


def _job_record(row: Any) -> Record:
    """The fields of `widesweep export`'s job record, in its order."""
    c, r = row.config, row.config.recipe
    epoch_seconds = _optional(row, "mean_epoch_seconds")
    train_seconds = _optional(row, "train_seconds")
    if epoch_seconds is None and train_seconds is not None and row.epochs_done > 0:
        epoch_seconds = train_seconds / row.epochs_done
    return {
        "sweep": row.sweep,
        "job_id": row.job_id,
        "cell_hash": row.cell_hash,
        "status": row.status,
        "in_spec": row.in_spec,
        "block": c.block,
        "l": c.deepening,
        "blocks_per_group": c.blocks_per_group,
        "depth": c.depth,
        "depth_convention": row.depth_convention,
        "width": c.width,
        "dropout": c.dropout,
        "dataset": c.dataset,
        "engine": c.engine or "candle",
        "params_json": c.params_json or "{}",
        "seed": c.seed,
        "epochs": r.epochs,
        "batch_size": r.batch_size,
        "lr": r.lr,
        "lr_milestones": list(r.lr_milestones),
        "lr_gamma": r.lr_gamma,
        "momentum": r.momentum,
        "nesterov": r.nesterov,
        "weight_decay": r.weight_decay,
        "reset_momentum_on_drop": r.reset_momentum_on_drop,
        "train_subset": r.train_subset,
        "test_subset": r.test_subset,
        "augment": r.augment if r.HasField("augment") else True,
        "precision": r.precision or "f32",
        "checkpoint_every": r.checkpoint_every,
        "params": row.params,
        "forward_macs": row.forward_macs,
        "attempt": row.attempt,
        "epochs_done": row.epochs_done,
        "final_train_loss": _optional(row, "final_train_loss"),
        "final_train_error": _optional(row, "final_train_error"),
        "final_test_loss": _optional(row, "final_test_loss"),
        "final_test_error": _optional(row, "final_test_error"),
        "best_test_error": _optional(row, "best_test_error"),
        "train_seconds": train_seconds,
        "epoch_seconds": epoch_seconds,
        "gpu_hours": (train_seconds if train_seconds is not None else row.recorded_seconds) / 3600.0,
        "created_at_ms": row.created_at_ms,
        "started_at_ms": _optional(row, "started_at_ms"),
        "finished_at_ms": _optional(row, "finished_at_ms"),
        "last_error": _optional(row, "last_error"),
        **_provenance(row),
    }


# The provenance fields of an export record, in the order of the Rust
# export; the engine's name is the record's `engine`.
PROVENANCE_FIELDS = (
    "widesweep_version",
    "git_commit",
    "engine_version",
    "kernels",
    "device",
    "driver_version",
    "cuda_version",
    "cudnn_version",
    "rng",
    "dataset_sha256",
    "hostname",
)


def _provenance(row: Any) -> Dict[str, Optional[str]]:
    """Where the job's result came from; None before it has one."""
    if not row.HasField("provenance"):
        return {field: None for field in PROVENANCE_FIELDS}
    return {field: getattr(row.provenance, field) for field in PROVENANCE_FIELDS}


def _frame(records: Sequence[Record]) -> Any:
    try:
        import pandas as pd
    except ImportError as error:
        raise ImportError("frame=True needs pandas (pip install pandas); records need nothing") from error
    return pd.DataFrame.from_records(records)


def params_of(record: Record) -> Dict[str, Any]:
    """A record's command params as a dict."""
    return json.loads(record["params_json"])
