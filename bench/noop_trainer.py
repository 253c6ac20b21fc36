"""A command engine's trainer that trains nothing: it speaks the protocol
(hello, one report and one checkpoint per epoch) as fast as it can, so that
a job's wall time beyond its recorded epochs is the engine's own overhead:
starting Python, the channel, the checkpoint upload, completing the job.
Used by bench/command-overhead.sh."""

from __future__ import annotations

import time

import widesweep

with widesweep.job() as job:
    for epoch in range(job.resume_epoch + 1, job.epochs + 1):
        began = time.perf_counter()
        (job.job_dir / "state").write_bytes(b"0" * 1024)
        job.report(epoch, train_loss=1.0, train_error=0.5, test_loss=1.0, test_error=0.5, lr=0.1,
                   epoch_seconds=time.perf_counter() - began)
        job.checkpoint(job.job_dir / "state")
