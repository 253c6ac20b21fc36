#!/usr/bin/env python3
"""A hostile client of a widesweep coordinator, built from the proto with
grpcio (not the project's own Rust client), and the latency a well-behaved
client sees while it attacks.

While the attack runs, another client calls GetSweep every 50 ms and its
latencies are recorded. The attack, all at once:

- WATCHERS WatchSweep streams at the fastest interval (100 ms), each on its
  own connection, on the sweep named by --sweep (a large one);
- OVERSIZED threads submitting, again and again, a spec just under the
  1 MiB limit whose 130,000 seeds repeat one value at the end (a pairwise
  duplicate check took seconds per spec);
- HALF_OPEN connections to the gRPC port (and to the dashboard's, with
  --http) that send half a request and fall silent.

Then a few probes: a NUL byte in a hostname, a 7 MB sweep name, a lease
under another worker's id. Prints one JSON object (see the end of main).

    python bench/hostile_client.py --url http://127.0.0.1:50051 --token T \\
        --sweep big --seconds 20 --http 127.0.0.1:8080
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

import grpc

from widesweep.v1 import sweep_pb2, sweep_pb2_grpc, worker_pb2, worker_pb2_grpc


def percentile(values: List[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary(values: List[float]) -> Dict[str, float]:
    return {
        "calls": len(values),
        "p50_ms": round(percentile(values, 0.50) * 1000, 1),
        "p99_ms": round(percentile(values, 0.99) * 1000, 1),
        "max_ms": round(max(values) * 1000, 1) if values else float("nan"),
    }


class Attack:
    def __init__(self, url: str, token: str, sweep: str) -> None:
        self.target = url.removeprefix("http://")
        self.metadata = [("authorization", f"Bearer {token}")]
        self.sweep = sweep
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.watch_updates: List[int] = []
        self.watch_errors: List[str] = []
        self.oversized: List[Tuple[str, float, str]] = []

    def channel(self) -> grpc.Channel:
        # A connection of its own per channel (grpcio otherwise shares one
        # among channels to the same address): 64 watchers are 64 connections.
        options = [("grpc.max_receive_message_length", 64 << 20), ("grpc.use_local_subchannel_pool", 1)]
        return grpc.insecure_channel(self.target, options=options)

    def watch(self) -> None:
        updates = 0
        with self.channel() as channel:
            stub = sweep_pb2_grpc.SweepServiceStub(channel)
            request = sweep_pb2.WatchSweepRequest(sweep=self.sweep, interval_ms=100)
            stream = stub.WatchSweep(request, metadata=self.metadata)
            cancel = threading.Thread(target=lambda: (self.stop.wait(), stream.cancel()), daemon=True)
            cancel.start()
            try:
                for _ in stream:
                    updates += 1
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.CANCELLED:
                    with self.lock:
                        self.watch_errors.append(f"{error.code().name}: {error.details()}")
        with self.lock:
            self.watch_updates.append(updates)

    def submit_oversized(self) -> None:
        seeds = ", ".join(str(s) for s in range(1, 130_001)) + ", 1"
        text = (
            'name = "oversized"\ndataset = "mnist"\n'
            f"seeds = [{seeds}]\n"
            "[recipe]\nepochs = 2\nlr_milestones = [1]\n[grid]\ndepth = [10]\nwidth = [1]\n"
        )
        assert len(text) < 1 << 20, len(text)
        with self.channel() as channel:
            stub = sweep_pb2_grpc.SweepServiceStub(channel)
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    request = sweep_pb2.SubmitSweepRequest(spec_toml=text)
                    stub.SubmitSweep(request, metadata=self.metadata, timeout=60)
                    outcome, details = "OK", ""
                except grpc.RpcError as error:
                    outcome, details = error.code().name, error.details() or ""
                with self.lock:
                    self.oversized.append((outcome, time.monotonic() - started, details[:300]))


def half_open(address: str, payload: bytes, count: int) -> List[socket.socket]:
    host, port = address.rsplit(":", 1)
    sockets = []
    for _ in range(count):
        s = socket.create_connection((host, int(port)), timeout=5)
        s.sendall(payload)
        sockets.append(s)
    return sockets


def closed_within(sockets: List[socket.socket], seconds: float) -> int:
    """How many of `sockets` the server closed (EOF or reset) within `seconds`."""
    deadline = time.monotonic() + seconds
    closed = 0
    for s in sockets:
        s.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            while s.recv(4096):
                pass
            closed += 1
        except (ConnectionResetError, BrokenPipeError):
            closed += 1
        except socket.timeout:
            pass
        finally:
            s.close()
    return closed


def cheap_calls(stub: Any, metadata: Any, sweep: str, seconds: float) -> List[float]:
    latencies = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.monotonic()
        stub.GetSweep(sweep_pb2.GetSweepRequest(sweep=sweep), metadata=metadata, timeout=60)
        latencies.append(time.monotonic() - started)
        time.sleep(0.05)
    return latencies


def probes(attack: Attack) -> Dict[str, Any]:
    """Single hostile calls, each answered with a precise refusal."""
    found: Dict[str, Any] = {}
    with attack.channel() as channel:
        workers = worker_pb2_grpc.WorkerServiceStub(channel)
        sweeps = sweep_pb2_grpc.SweepServiceStub(channel)

        def refused(call: Any, request: Any) -> Tuple[str, str]:
            try:
                call(request, metadata=attack.metadata)
                return ("OK", "")
            except grpc.RpcError as error:
                return (error.code().name, error.details() or "")

        found["nul_hostname"] = refused(
            workers.RegisterWorker, worker_pb2.RegisterWorkerRequest(hostname="gpu\0-01", devices=["cpu"])
        )
        code, details = refused(sweeps.GetSweep, sweep_pb2.GetSweepRequest(sweep="x" * 7_000_000))
        found["huge_name"] = (code, len(details))
        register = worker_pb2.RegisterWorkerRequest(hostname="probe", devices=["cpu"], version="probe")
        mine = workers.RegisterWorker(register, metadata=attack.metadata)
        theirs = workers.RegisterWorker(register, metadata=attack.metadata)
        forged = worker_pb2.LeaseJobRequest(worker_id=theirs.worker_id, worker_secret=mine.worker_secret, device="cpu")
        found["forged_lease"] = refused(workers.LeaseJob, forged)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="the coordinator, http://HOST:PORT")
    parser.add_argument("--token", required=True, help="a credential that may submit and read")
    parser.add_argument("--sweep", required=True, help="an existing sweep to watch and to GetSweep")
    parser.add_argument("--http", help="the dashboard's HOST:PORT, to hold half-open connections to it too")
    parser.add_argument("--watchers", type=int, default=64)
    parser.add_argument("--oversized", type=int, default=2)
    parser.add_argument("--half-open", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the attack runs")
    parser.add_argument("--idle-timeout", type=float, help="the coordinator's; check half-open connections close")
    args = parser.parse_args()

    attack = Attack(args.url, args.token, args.sweep)
    with attack.channel() as channel:
        stub = sweep_pb2_grpc.SweepServiceStub(channel)
        baseline = cheap_calls(stub, attack.metadata, args.sweep, 1.0)
        held = half_open(attack.target, b"PRI * HTTP/2.0\r\n", args.half_open)
        if args.http:
            held += half_open(args.http, b"GET /api/sweeps HTTP/1.1\r\nHost: x\r\n", args.half_open)
        threads = [threading.Thread(target=attack.watch, daemon=True) for _ in range(args.watchers)]
        threads += [threading.Thread(target=attack.submit_oversized, daemon=True) for _ in range(args.oversized)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)  # let the watchers and the first specs arrive
        under_attack = cheap_calls(stub, attack.metadata, args.sweep, args.seconds)
        attack.stop.set()
        for thread in threads:
            thread.join(timeout=120)
    closed = closed_within(held, args.idle_timeout + 10) if args.idle_timeout is not None else None
    codes: Dict[str, int] = {}
    for outcome, _, _ in attack.oversized:
        codes[outcome] = codes.get(outcome, 0) + 1
    result = {
        "baseline": summary(baseline),
        "under_attack": summary(under_attack),
        "watchers": args.watchers,
        "watch_updates_min": min(attack.watch_updates) if attack.watch_updates else 0,
        "watch_errors": attack.watch_errors[:5],
        "oversized_codes": codes,
        "oversized_mean_s": round(statistics.mean(t for _, t, _ in attack.oversized), 3) if attack.oversized else None,
        "oversized_details": sorted({d for _, _, d in attack.oversized})[:3],
        "half_open": len(held),
        "half_open_closed": closed,
        "probes": probes(attack),
    }
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
