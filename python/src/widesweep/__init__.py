"""widesweep's Python package: a lab's own trainer as a widesweep job.

- ``widesweep.job()``: the job side of the command engine (see ``widesweep.job``).
- ``widesweep.PROTOCOL``: the version of the channel between a worker and
  its command; a worker of another protocol refuses this package's hello.
- ``widesweep.EXIT_DO_NOT_RETRY``: the exit status of a failure not to retry.
"""

from .job import EXIT_DO_NOT_RETRY, PROTOCOL, DoNotRetry, Job, ProtocolError, job

__version__ = "0.1.0"

__all__ = ["EXIT_DO_NOT_RETRY", "PROTOCOL", "DoNotRetry", "Job", "ProtocolError", "job", "__version__"]
