from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorClass(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_CLASS_UNKNOWN: _ClassVar[ErrorClass]
    ERROR_CLASS_JOB: _ClassVar[ErrorClass]
    ERROR_CLASS_MACHINE: _ClassVar[ErrorClass]
ERROR_CLASS_UNKNOWN: ErrorClass
ERROR_CLASS_JOB: ErrorClass
ERROR_CLASS_MACHINE: ErrorClass

class QuarantineReport(_message.Message):
    __slots__ = ("worker_id", "worker_secret", "reason", "wait_seconds")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_SECRET_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    worker_id: int
    worker_secret: str
    reason: str
    wait_seconds: int
    def __init__(self, worker_id: _Optional[int] = ..., worker_secret: _Optional[str] = ..., reason: _Optional[str] = ..., wait_seconds: _Optional[int] = ...) -> None: ...

class QuarantineAck(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RegisterWorkerRequest(_message.Message):
    __slots__ = ("hostname", "devices", "version")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    devices: _containers.RepeatedScalarFieldContainer[str]
    version: str
    def __init__(self, hostname: _Optional[str] = ..., devices: _Optional[_Iterable[str]] = ..., version: _Optional[str] = ...) -> None: ...

class RegisterWorkerResponse(_message.Message):
    __slots__ = ("worker_id", "lease_seconds", "worker_secret")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WORKER_SECRET_FIELD_NUMBER: _ClassVar[int]
    worker_id: int
    lease_seconds: int
    worker_secret: str
    def __init__(self, worker_id: _Optional[int] = ..., lease_seconds: _Optional[int] = ..., worker_secret: _Optional[str] = ...) -> None: ...

class LeaseJobRequest(_message.Message):
    __slots__ = ("worker_id", "worker_secret", "device", "device_kind")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_SECRET_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_KIND_FIELD_NUMBER: _ClassVar[int]
    worker_id: int
    worker_secret: str
    device: str
    device_kind: str
    def __init__(self, worker_id: _Optional[int] = ..., worker_secret: _Optional[str] = ..., device: _Optional[str] = ..., device_kind: _Optional[str] = ...) -> None: ...

class LeaseJobResponse(_message.Message):
    __slots__ = ("job", "retry_after_ms")
    JOB_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    job: Job
    retry_after_ms: int
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ..., retry_after_ms: _Optional[int] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("job_id", "attempt", "max_attempts", "sweep_name", "cell_hash", "config", "lease_expires_at_ms", "checkpoint", "lease_token", "command")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    SWEEP_NAME_FIELD_NUMBER: _ClassVar[int]
    CELL_HASH_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    attempt: int
    max_attempts: int
    sweep_name: str
    cell_hash: str
    config: CellConfig
    lease_expires_at_ms: int
    checkpoint: CheckpointRef
    lease_token: str
    command: CommandEngine
    def __init__(self, job_id: _Optional[int] = ..., attempt: _Optional[int] = ..., max_attempts: _Optional[int] = ..., sweep_name: _Optional[str] = ..., cell_hash: _Optional[str] = ..., config: _Optional[_Union[CellConfig, _Mapping]] = ..., lease_expires_at_ms: _Optional[int] = ..., checkpoint: _Optional[_Union[CheckpointRef, _Mapping]] = ..., lease_token: _Optional[str] = ..., command: _Optional[_Union[CommandEngine, _Mapping]] = ...) -> None: ...

class CommandEngine(_message.Message):
    __slots__ = ("command", "cwd", "env", "grace_seconds", "heartbeat_seconds")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    CWD_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    GRACE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    command: _containers.RepeatedScalarFieldContainer[str]
    cwd: str
    env: _containers.ScalarMap[str, str]
    grace_seconds: int
    heartbeat_seconds: int
    def __init__(self, command: _Optional[_Iterable[str]] = ..., cwd: _Optional[str] = ..., env: _Optional[_Mapping[str, str]] = ..., grace_seconds: _Optional[int] = ..., heartbeat_seconds: _Optional[int] = ...) -> None: ...

class CellConfig(_message.Message):
    __slots__ = ("block", "deepening", "blocks_per_group", "depth", "width", "dropout", "dataset", "seed", "recipe", "engine", "params_json")
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    DEEPENING_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_PER_GROUP_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    DROPOUT_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    RECIPE_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    PARAMS_JSON_FIELD_NUMBER: _ClassVar[int]
    block: str
    deepening: int
    blocks_per_group: int
    depth: int
    width: int
    dropout: float
    dataset: str
    seed: int
    recipe: Recipe
    engine: str
    params_json: str
    def __init__(self, block: _Optional[str] = ..., deepening: _Optional[int] = ..., blocks_per_group: _Optional[int] = ..., depth: _Optional[int] = ..., width: _Optional[int] = ..., dropout: _Optional[float] = ..., dataset: _Optional[str] = ..., seed: _Optional[int] = ..., recipe: _Optional[_Union[Recipe, _Mapping]] = ..., engine: _Optional[str] = ..., params_json: _Optional[str] = ...) -> None: ...

class Recipe(_message.Message):
    __slots__ = ("epochs", "batch_size", "lr", "lr_milestones", "lr_gamma", "momentum", "nesterov", "weight_decay", "train_subset", "checkpoint_every", "reset_momentum_on_drop", "test_subset", "augment", "precision", "bn_recalibration_batches")
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    LR_FIELD_NUMBER: _ClassVar[int]
    LR_MILESTONES_FIELD_NUMBER: _ClassVar[int]
    LR_GAMMA_FIELD_NUMBER: _ClassVar[int]
    MOMENTUM_FIELD_NUMBER: _ClassVar[int]
    NESTEROV_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_DECAY_FIELD_NUMBER: _ClassVar[int]
    TRAIN_SUBSET_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_EVERY_FIELD_NUMBER: _ClassVar[int]
    RESET_MOMENTUM_ON_DROP_FIELD_NUMBER: _ClassVar[int]
    TEST_SUBSET_FIELD_NUMBER: _ClassVar[int]
    AUGMENT_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    BN_RECALIBRATION_BATCHES_FIELD_NUMBER: _ClassVar[int]
    epochs: int
    batch_size: int
    lr: float
    lr_milestones: _containers.RepeatedScalarFieldContainer[int]
    lr_gamma: float
    momentum: float
    nesterov: bool
    weight_decay: float
    train_subset: int
    checkpoint_every: int
    reset_momentum_on_drop: bool
    test_subset: int
    augment: bool
    precision: str
    bn_recalibration_batches: int
    def __init__(self, epochs: _Optional[int] = ..., batch_size: _Optional[int] = ..., lr: _Optional[float] = ..., lr_milestones: _Optional[_Iterable[int]] = ..., lr_gamma: _Optional[float] = ..., momentum: _Optional[float] = ..., nesterov: _Optional[bool] = ..., weight_decay: _Optional[float] = ..., train_subset: _Optional[int] = ..., checkpoint_every: _Optional[int] = ..., reset_momentum_on_drop: _Optional[bool] = ..., test_subset: _Optional[int] = ..., augment: _Optional[bool] = ..., precision: _Optional[str] = ..., bn_recalibration_batches: _Optional[int] = ...) -> None: ...

class ReportEpochRequest(_message.Message):
    __slots__ = ("job_id", "attempt", "metrics", "lease_token")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    attempt: int
    metrics: EpochMetrics
    lease_token: str
    def __init__(self, job_id: _Optional[int] = ..., attempt: _Optional[int] = ..., metrics: _Optional[_Union[EpochMetrics, _Mapping]] = ..., lease_token: _Optional[str] = ...) -> None: ...

class EpochMetrics(_message.Message):
    __slots__ = ("epoch", "train_loss", "train_error", "test_loss", "test_error", "lr", "epoch_seconds", "images_per_second")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    TRAIN_LOSS_FIELD_NUMBER: _ClassVar[int]
    TRAIN_ERROR_FIELD_NUMBER: _ClassVar[int]
    TEST_LOSS_FIELD_NUMBER: _ClassVar[int]
    TEST_ERROR_FIELD_NUMBER: _ClassVar[int]
    LR_FIELD_NUMBER: _ClassVar[int]
    EPOCH_SECONDS_FIELD_NUMBER: _ClassVar[int]
    IMAGES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    train_loss: float
    train_error: float
    test_loss: float
    test_error: float
    lr: float
    epoch_seconds: float
    images_per_second: float
    def __init__(self, epoch: _Optional[int] = ..., train_loss: _Optional[float] = ..., train_error: _Optional[float] = ..., test_loss: _Optional[float] = ..., test_error: _Optional[float] = ..., lr: _Optional[float] = ..., epoch_seconds: _Optional[float] = ..., images_per_second: _Optional[float] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("job_id", "attempt", "lease_token")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    attempt: int
    lease_token: str
    def __init__(self, job_id: _Optional[int] = ..., attempt: _Optional[int] = ..., lease_token: _Optional[str] = ...) -> None: ...

class LeaseRenewal(_message.Message):
    __slots__ = ("lease_expires_at_ms",)
    LEASE_EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    lease_expires_at_ms: int
    def __init__(self, lease_expires_at_ms: _Optional[int] = ...) -> None: ...

class CompleteJobRequest(_message.Message):
    __slots__ = ("job_id", "attempt", "final_metrics", "best_test_error", "train_seconds", "lease_token", "provenance")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    FINAL_METRICS_FIELD_NUMBER: _ClassVar[int]
    BEST_TEST_ERROR_FIELD_NUMBER: _ClassVar[int]
    TRAIN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    attempt: int
    final_metrics: EpochMetrics
    best_test_error: float
    train_seconds: float
    lease_token: str
    provenance: Provenance
    def __init__(self, job_id: _Optional[int] = ..., attempt: _Optional[int] = ..., final_metrics: _Optional[_Union[EpochMetrics, _Mapping]] = ..., best_test_error: _Optional[float] = ..., train_seconds: _Optional[float] = ..., lease_token: _Optional[str] = ..., provenance: _Optional[_Union[Provenance, _Mapping]] = ...) -> None: ...

class Provenance(_message.Message):
    __slots__ = ("widesweep_version", "git_commit", "engine", "engine_version", "kernels", "device", "driver_version", "cuda_version", "cudnn_version", "rng", "dataset_sha256", "hostname")
    WIDESWEEP_VERSION_FIELD_NUMBER: _ClassVar[int]
    GIT_COMMIT_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    ENGINE_VERSION_FIELD_NUMBER: _ClassVar[int]
    KERNELS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    DRIVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    CUDA_VERSION_FIELD_NUMBER: _ClassVar[int]
    CUDNN_VERSION_FIELD_NUMBER: _ClassVar[int]
    RNG_FIELD_NUMBER: _ClassVar[int]
    DATASET_SHA256_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    widesweep_version: str
    git_commit: str
    engine: str
    engine_version: str
    kernels: str
    device: str
    driver_version: str
    cuda_version: str
    cudnn_version: str
    rng: str
    dataset_sha256: str
    hostname: str
    def __init__(self, widesweep_version: _Optional[str] = ..., git_commit: _Optional[str] = ..., engine: _Optional[str] = ..., engine_version: _Optional[str] = ..., kernels: _Optional[str] = ..., device: _Optional[str] = ..., driver_version: _Optional[str] = ..., cuda_version: _Optional[str] = ..., cudnn_version: _Optional[str] = ..., rng: _Optional[str] = ..., dataset_sha256: _Optional[str] = ..., hostname: _Optional[str] = ...) -> None: ...

class CompleteJobResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FailJobRequest(_message.Message):
    __slots__ = ("job_id", "attempt", "error", "retryable", "lease_token", "error_class")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ERROR_CLASS_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    attempt: int
    error: str
    retryable: bool
    lease_token: str
    error_class: ErrorClass
    def __init__(self, job_id: _Optional[int] = ..., attempt: _Optional[int] = ..., error: _Optional[str] = ..., retryable: _Optional[bool] = ..., lease_token: _Optional[str] = ..., error_class: _Optional[_Union[ErrorClass, str]] = ...) -> None: ...

class FailJobResponse(_message.Message):
    __slots__ = ("requeued",)
    REQUEUED_FIELD_NUMBER: _ClassVar[int]
    requeued: bool
    def __init__(self, requeued: _Optional[bool] = ...) -> None: ...

class ReleaseJobRequest(_message.Message):
    __slots__ = ("job_id", "attempt", "lease_token")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    attempt: int
    lease_token: str
    def __init__(self, job_id: _Optional[int] = ..., attempt: _Optional[int] = ..., lease_token: _Optional[str] = ...) -> None: ...

class ReleaseJobResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CheckpointRef(_message.Message):
    __slots__ = ("checkpoint_id", "job_id", "attempt", "epoch", "size_bytes", "sha256")
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    checkpoint_id: int
    job_id: int
    attempt: int
    epoch: int
    size_bytes: int
    sha256: str
    def __init__(self, checkpoint_id: _Optional[int] = ..., job_id: _Optional[int] = ..., attempt: _Optional[int] = ..., epoch: _Optional[int] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class CheckpointChunk(_message.Message):
    __slots__ = ("header", "data")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    header: CheckpointHeader
    data: bytes
    def __init__(self, header: _Optional[_Union[CheckpointHeader, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class CheckpointHeader(_message.Message):
    __slots__ = ("job_id", "attempt", "epoch", "size_bytes", "sha256", "lease_token")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    attempt: int
    epoch: int
    size_bytes: int
    sha256: str
    lease_token: str
    def __init__(self, job_id: _Optional[int] = ..., attempt: _Optional[int] = ..., epoch: _Optional[int] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., lease_token: _Optional[str] = ...) -> None: ...

class DownloadCheckpointRequest(_message.Message):
    __slots__ = ("job_id", "attempt", "checkpoint_id", "lease_token")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    attempt: int
    checkpoint_id: int
    lease_token: str
    def __init__(self, job_id: _Optional[int] = ..., attempt: _Optional[int] = ..., checkpoint_id: _Optional[int] = ..., lease_token: _Optional[str] = ...) -> None: ...
