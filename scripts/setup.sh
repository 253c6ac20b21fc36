#!/usr/bin/env bash
# Prepares a fresh machine for widesweep's tests and quickstart:
# - PostgreSQL running on 127.0.0.1:5432 (the store tests need both backends
#   and fail, not skip, without it);
# - the real Fashion-MNIST dataset from Debian (the real-data training test
#   and the quickstart sweep);
# - with --tests, also a one-node Slurm cluster (deploy/slurm/local-cluster.sh)
#   for the Slurm launcher's test, the Kubernetes manifests' tools
#   (kubectl, kubernetes-validate, checkov), the dashboard's browser
#   (Debian's chromium, driven by playwright-core from npm) and Python with
#   numpy, pytest and grpcio (/opt/widesweep-python: the command engine's
#   test trainer and the Python package's tests); those tests fail, not
#   skip, without them.
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
    if ! command -v kubectl >/dev/null 2>&1; then
        echo "installing kubectl (Debian's kubernetes-client)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubernetes-client >/dev/null
    fi
    tools=/opt/widesweep-test-tools
    if [ ! -x "$tools/bin/checkov" ] || [ ! -x "$tools/bin/kubernetes-validate" ]; then
        echo "installing kubernetes-validate and checkov into $tools"
        python3 -m venv "$tools" 2>/dev/null || {
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
            python3 -m venv "$tools"
        }
        "$tools/bin/pip" install -q kubernetes-validate==1.37.0 checkov==3.3.30
    fi
    python=/opt/widesweep-python
    if [ ! -x "$python/bin/python" ] || ! "$python/bin/python" -c "import numpy, pytest, grpc, grpc_tools" 2>/dev/null; then
        echo "installing numpy, pytest and grpcio into $python (the command engine's test trainer, the Python package's tests)"
        python3 -m venv "$python" 2>/dev/null || {
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
            python3 -m venv "$python"
        }
        "$python/bin/pip" install -q numpy==2.4.6 pytest==9.2.0 grpcio==1.85.4 protobuf==7.36.2 grpcio-tools==1.85.4
    fi
    if ! command -v chromium >/dev/null 2>&1; then
        echo "installing chromium (Debian) for the dashboard's browser test"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    fi
    if [ ! -d "$tools/node/node_modules/playwright-core" ]; then
        echo "installing playwright-core into $tools/node (it drives Debian's chromium; no browser download)"
        if ! command -v npm >/dev/null 2>&1; then
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
        fi
        mkdir -p "$tools/node"
        (cd "$tools/node" && npm install --silent --no-audit --no-fund playwright-core@1.64.1)
    fi
fi
