from widesweep.v1 import worker_pb2 as _worker_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobsRef(_message.Message):
    __slots__ = ("sweep", "job_ids", "new_sweep")
    SWEEP_FIELD_NUMBER: _ClassVar[int]
    JOB_IDS_FIELD_NUMBER: _ClassVar[int]
    NEW_SWEEP_FIELD_NUMBER: _ClassVar[int]
    sweep: str
    job_ids: _containers.RepeatedScalarFieldContainer[int]
    new_sweep: str
    def __init__(self, sweep: _Optional[str] = ..., job_ids: _Optional[_Iterable[int]] = ..., new_sweep: _Optional[str] = ...) -> None: ...

class RerunJobsResponse(_message.Message):
    __slots__ = ("job_ids",)
    JOB_IDS_FIELD_NUMBER: _ClassVar[int]
    job_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, job_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class ListWorkersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListWorkersResponse(_message.Message):
    __slots__ = ("workers",)
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    workers: _containers.RepeatedCompositeFieldContainer[WorkerInfo]
    def __init__(self, workers: _Optional[_Iterable[_Union[WorkerInfo, _Mapping]]] = ...) -> None: ...

class WorkerRef(_message.Message):
    __slots__ = ("worker_id",)
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    worker_id: int
    def __init__(self, worker_id: _Optional[int] = ...) -> None: ...

class WorkerInfo(_message.Message):
    __slots__ = ("worker_id", "hostname", "devices", "version", "last_seen_at_ms", "running_jobs", "quarantine_reason", "quarantined_until_ms", "now_ms")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_AT_MS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_JOBS_FIELD_NUMBER: _ClassVar[int]
    QUARANTINE_REASON_FIELD_NUMBER: _ClassVar[int]
    QUARANTINED_UNTIL_MS_FIELD_NUMBER: _ClassVar[int]
    NOW_MS_FIELD_NUMBER: _ClassVar[int]
    worker_id: int
    hostname: str
    devices: _containers.RepeatedScalarFieldContainer[str]
    version: str
    last_seen_at_ms: int
    running_jobs: int
    quarantine_reason: str
    quarantined_until_ms: int
    now_ms: int
    def __init__(self, worker_id: _Optional[int] = ..., hostname: _Optional[str] = ..., devices: _Optional[_Iterable[str]] = ..., version: _Optional[str] = ..., last_seen_at_ms: _Optional[int] = ..., running_jobs: _Optional[int] = ..., quarantine_reason: _Optional[str] = ..., quarantined_until_ms: _Optional[int] = ..., now_ms: _Optional[int] = ...) -> None: ...

class GetVersionRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VersionInfo(_message.Message):
    __slots__ = ("version", "proto_sha256")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PROTO_SHA256_FIELD_NUMBER: _ClassVar[int]
    version: str
    proto_sha256: str
    def __init__(self, version: _Optional[str] = ..., proto_sha256: _Optional[str] = ...) -> None: ...

class SubmitSweepRequest(_message.Message):
    __slots__ = ("spec_toml", "allow_large", "priority", "max_attempts")
    SPEC_TOML_FIELD_NUMBER: _ClassVar[int]
    ALLOW_LARGE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    spec_toml: str
    allow_large: bool
    priority: int
    max_attempts: int
    def __init__(self, spec_toml: _Optional[str] = ..., allow_large: _Optional[bool] = ..., priority: _Optional[int] = ..., max_attempts: _Optional[int] = ...) -> None: ...

class SubmitSweepResponse(_message.Message):
    __slots__ = ("sweep_id", "name", "new_cells", "existing_cells", "dropped_cells", "total_cells", "reserve_cells", "added_cells")
    SWEEP_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NEW_CELLS_FIELD_NUMBER: _ClassVar[int]
    EXISTING_CELLS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_CELLS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_CELLS_FIELD_NUMBER: _ClassVar[int]
    RESERVE_CELLS_FIELD_NUMBER: _ClassVar[int]
    ADDED_CELLS_FIELD_NUMBER: _ClassVar[int]
    sweep_id: int
    name: str
    new_cells: int
    existing_cells: int
    dropped_cells: int
    total_cells: int
    reserve_cells: int
    added_cells: int
    def __init__(self, sweep_id: _Optional[int] = ..., name: _Optional[str] = ..., new_cells: _Optional[int] = ..., existing_cells: _Optional[int] = ..., dropped_cells: _Optional[int] = ..., total_cells: _Optional[int] = ..., reserve_cells: _Optional[int] = ..., added_cells: _Optional[int] = ...) -> None: ...

class SweepRef(_message.Message):
    __slots__ = ("sweep",)
    SWEEP_FIELD_NUMBER: _ClassVar[int]
    sweep: str
    def __init__(self, sweep: _Optional[str] = ...) -> None: ...

class GetSweepRequest(_message.Message):
    __slots__ = ("sweep",)
    SWEEP_FIELD_NUMBER: _ClassVar[int]
    sweep: str
    def __init__(self, sweep: _Optional[str] = ...) -> None: ...

class ListSweepsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSweepsResponse(_message.Message):
    __slots__ = ("sweeps",)
    SWEEPS_FIELD_NUMBER: _ClassVar[int]
    sweeps: _containers.RepeatedCompositeFieldContainer[SweepStatus]
    def __init__(self, sweeps: _Optional[_Iterable[_Union[SweepStatus, _Mapping]]] = ...) -> None: ...

class WatchSweepRequest(_message.Message):
    __slots__ = ("sweep", "interval_ms")
    SWEEP_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    sweep: str
    interval_ms: int
    def __init__(self, sweep: _Optional[str] = ..., interval_ms: _Optional[int] = ...) -> None: ...

class SweepStatus(_message.Message):
    __slots__ = ("sweep_id", "name", "state", "priority", "dataset", "pending", "running", "succeeded", "failed", "cancelled", "total", "epochs_done", "epochs_total", "mean_epoch_seconds", "eta_seconds", "created_at_ms", "errors", "reserve", "seeds_target_ci", "error_groups", "pause_reason")
    SWEEP_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_DONE_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    MEAN_EPOCH_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ETA_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    RESERVE_FIELD_NUMBER: _ClassVar[int]
    SEEDS_TARGET_CI_FIELD_NUMBER: _ClassVar[int]
    ERROR_GROUPS_FIELD_NUMBER: _ClassVar[int]
    PAUSE_REASON_FIELD_NUMBER: _ClassVar[int]
    sweep_id: int
    name: str
    state: str
    priority: int
    dataset: str
    pending: int
    running: int
    succeeded: int
    failed: int
    cancelled: int
    total: int
    epochs_done: int
    epochs_total: int
    mean_epoch_seconds: float
    eta_seconds: float
    created_at_ms: int
    errors: _containers.RepeatedCompositeFieldContainer[JobError]
    reserve: int
    seeds_target_ci: float
    error_groups: _containers.RepeatedCompositeFieldContainer[ErrorGroup]
    pause_reason: str
    def __init__(self, sweep_id: _Optional[int] = ..., name: _Optional[str] = ..., state: _Optional[str] = ..., priority: _Optional[int] = ..., dataset: _Optional[str] = ..., pending: _Optional[int] = ..., running: _Optional[int] = ..., succeeded: _Optional[int] = ..., failed: _Optional[int] = ..., cancelled: _Optional[int] = ..., total: _Optional[int] = ..., epochs_done: _Optional[int] = ..., epochs_total: _Optional[int] = ..., mean_epoch_seconds: _Optional[float] = ..., eta_seconds: _Optional[float] = ..., created_at_ms: _Optional[int] = ..., errors: _Optional[_Iterable[_Union[JobError, _Mapping]]] = ..., reserve: _Optional[int] = ..., seeds_target_ci: _Optional[float] = ..., error_groups: _Optional[_Iterable[_Union[ErrorGroup, _Mapping]]] = ..., pause_reason: _Optional[str] = ...) -> None: ...

class JobError(_message.Message):
    __slots__ = ("job_id", "seed", "status", "attempts_spent", "max_attempts", "error", "hostname", "worker_id", "error_class")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_SPENT_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_CLASS_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    seed: int
    status: str
    attempts_spent: int
    max_attempts: int
    error: str
    hostname: str
    worker_id: int
    error_class: str
    def __init__(self, job_id: _Optional[int] = ..., seed: _Optional[int] = ..., status: _Optional[str] = ..., attempts_spent: _Optional[int] = ..., max_attempts: _Optional[int] = ..., error: _Optional[str] = ..., hostname: _Optional[str] = ..., worker_id: _Optional[int] = ..., error_class: _Optional[str] = ...) -> None: ...

class ErrorGroup(_message.Message):
    __slots__ = ("error_class", "error", "attempts", "jobs", "workers")
    ERROR_CLASS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    error_class: str
    error: str
    attempts: int
    jobs: int
    workers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, error_class: _Optional[str] = ..., error: _Optional[str] = ..., attempts: _Optional[int] = ..., jobs: _Optional[int] = ..., workers: _Optional[_Iterable[str]] = ...) -> None: ...

class ListResultsRequest(_message.Message):
    __slots__ = ("sweep", "include_epochs")
    SWEEP_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    sweep: str
    include_epochs: bool
    def __init__(self, sweep: _Optional[str] = ..., include_epochs: _Optional[bool] = ...) -> None: ...

class ResultsPage(_message.Message):
    __slots__ = ("jobs", "epochs")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[JobResultRow]
    epochs: _containers.RepeatedCompositeFieldContainer[JobEpoch]
    def __init__(self, jobs: _Optional[_Iterable[_Union[JobResultRow, _Mapping]]] = ..., epochs: _Optional[_Iterable[_Union[JobEpoch, _Mapping]]] = ...) -> None: ...

class JobResultRow(_message.Message):
    __slots__ = ("job_id", "sweep", "cell_hash", "config", "depth_convention", "params", "forward_macs", "in_spec", "status", "attempt", "epochs_done", "final_train_loss", "final_train_error", "final_test_loss", "final_test_error", "best_test_error", "train_seconds", "mean_epoch_seconds", "recorded_seconds", "created_at_ms", "started_at_ms", "finished_at_ms", "last_error", "work", "provenance")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SWEEP_FIELD_NUMBER: _ClassVar[int]
    CELL_HASH_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    DEPTH_CONVENTION_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    FORWARD_MACS_FIELD_NUMBER: _ClassVar[int]
    IN_SPEC_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_DONE_FIELD_NUMBER: _ClassVar[int]
    FINAL_TRAIN_LOSS_FIELD_NUMBER: _ClassVar[int]
    FINAL_TRAIN_ERROR_FIELD_NUMBER: _ClassVar[int]
    FINAL_TEST_LOSS_FIELD_NUMBER: _ClassVar[int]
    FINAL_TEST_ERROR_FIELD_NUMBER: _ClassVar[int]
    BEST_TEST_ERROR_FIELD_NUMBER: _ClassVar[int]
    TRAIN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MEAN_EPOCH_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RECORDED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    WORK_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    sweep: str
    cell_hash: str
    config: _worker_pb2.CellConfig
    depth_convention: str
    params: int
    forward_macs: int
    in_spec: bool
    status: str
    attempt: int
    epochs_done: int
    final_train_loss: float
    final_train_error: float
    final_test_loss: float
    final_test_error: float
    best_test_error: float
    train_seconds: float
    mean_epoch_seconds: float
    recorded_seconds: float
    created_at_ms: int
    started_at_ms: int
    finished_at_ms: int
    last_error: str
    work: float
    provenance: _worker_pb2.Provenance
    def __init__(self, job_id: _Optional[int] = ..., sweep: _Optional[str] = ..., cell_hash: _Optional[str] = ..., config: _Optional[_Union[_worker_pb2.CellConfig, _Mapping]] = ..., depth_convention: _Optional[str] = ..., params: _Optional[int] = ..., forward_macs: _Optional[int] = ..., in_spec: _Optional[bool] = ..., status: _Optional[str] = ..., attempt: _Optional[int] = ..., epochs_done: _Optional[int] = ..., final_train_loss: _Optional[float] = ..., final_train_error: _Optional[float] = ..., final_test_loss: _Optional[float] = ..., final_test_error: _Optional[float] = ..., best_test_error: _Optional[float] = ..., train_seconds: _Optional[float] = ..., mean_epoch_seconds: _Optional[float] = ..., recorded_seconds: _Optional[float] = ..., created_at_ms: _Optional[int] = ..., started_at_ms: _Optional[int] = ..., finished_at_ms: _Optional[int] = ..., last_error: _Optional[str] = ..., work: _Optional[float] = ..., provenance: _Optional[_Union[_worker_pb2.Provenance, _Mapping]] = ...) -> None: ...

class JobEpoch(_message.Message):
    __slots__ = ("job_id", "metrics")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    metrics: _worker_pb2.EpochMetrics
    def __init__(self, job_id: _Optional[int] = ..., metrics: _Optional[_Union[_worker_pb2.EpochMetrics, _Mapping]] = ...) -> None: ...
