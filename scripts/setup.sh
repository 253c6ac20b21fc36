#!/usr/bin/env bash
# Prepares a fresh machine for widesweep's tests and quickstart:
# - PostgreSQL running on 127.0.0.1:5432 (the store tests need both backends
#   and fail, not skip, without it);
# - the real Fashion-MNIST dataset from Debian (the real-data training test
#   and the quickstart sweep);
# - with --tests, also a one-node Slurm cluster (deploy/slurm/local-cluster.sh)
#   for the Slurm launcher's test, which fails, not skips, without it.
# Idempotent: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

pg_ready() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }

if ! command -v pg_isready >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
if ! pg_ready; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 30); do pg_ready && break; sleep 1; done
fi
if ! pg_ready; then
    echo "error: PostgreSQL is not accepting connections on 127.0.0.1:5432" >&2
    exit 1
fi

if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    echo "installing Fashion-MNIST (Debian package dataset-fashion-mnist)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi

if [ "${1:-}" = "--tests" ]; then
    bash deploy/slurm/local-cluster.sh
fi
