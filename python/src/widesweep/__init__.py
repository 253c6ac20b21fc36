"""widesweep's Python package: a lab's own trainer as a widesweep job.

- ``widesweep.job()``: the job side of the command engine (see ``widesweep.job``).
- ``widesweep.PROTOCOL``: the version of the channel between a worker and
  its command; a worker of another protocol refuses this package's hello.
- ``widesweep.EXIT_DO_NOT_RETRY``: the exit status of a failure not to retry.
- ``widesweep.Client``: a coordinator from Python (submit, status, results
  and epochs as records or pandas DataFrames); needs ``./python[client]``.
"""

from typing import Any

from .job import EXIT_DO_NOT_RETRY, PROTOCOL, DoNotRetry, Job, ProtocolError, job

__version__ = "0.1.0"

__all__ = [
    "EXIT_DO_NOT_RETRY",
    "PROTOCOL",
    "Client",
    "DoNotRetry",
    "Job",
    "ProtocolError",
    "VersionMismatch",
    "job",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # The client needs grpcio; the job side needs nothing: import it lazily.
    if name in ("Client", "VersionMismatch"):
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module 'widesweep' has no attribute {name!r}")
