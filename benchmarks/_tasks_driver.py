"""Create a dispatch workload on a Cloud Tasks emulator with the official client, then
release it: the same script drives ordertasks' emulator (REST) and the peer emulator (gRPC,
run with the peer venv's python, whose pinned ``google-cloud-tasks`` that peer accepts).

    python _tasks_driver.py --endpoint 127.0.0.1:P --transport rest|grpc --url URL \\
        --queues 8 --tasks 8000 --rate 500 --prefix run1 [--eta-start T --eta-step S] [--no-pause]

Queues are created paused, every task is created, then every queue is resumed; one JSON
line reports ``create_seconds`` and ``resumed_at`` (epoch seconds, taken just before the
first resume). Only this package's client is imported, so it runs in either venv.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from google.cloud import tasks_v2

PARENT = "projects/bench-project/locations/us-central1"
CREATE_THREADS = 16


def client_for(endpoint: str, transport: str) -> Any:
    """The official client aimed at ``endpoint`` (anonymous; plaintext for gRPC)."""
    if transport == "grpc":
        import grpc
        from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

        return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=grpc.insecure_channel(endpoint)))
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials

    return tasks_v2.CloudTasksClient(transport="rest", credentials=AnonymousCredentials(),
                                     client_options=ClientOptions(api_endpoint=f"http://{endpoint}"))


def create_queues(client: Any, args: argparse.Namespace) -> list[str]:
    """``args.queues`` fresh queues with the given rate, paused unless ``--no-pause``."""
    names = [f"{PARENT}/queues/{args.prefix}-{i}" for i in range(args.queues)]
    for name in names:
        client.create_queue(parent=PARENT, queue={"name": name, "rate_limits": {
            "max_dispatches_per_second": args.rate, "max_burst_size": args.burst,
            "max_concurrent_dispatches": args.concurrent}})
        if not args.no_pause:
            client.pause_queue(name=name)
    return names


def task_body(args: argparse.Namespace, queue: str, index: int) -> dict[str, Any]:
    """Task ``index``: an explicit name (the peer's generated names collide under threads)."""
    task: dict[str, Any] = {"name": f"{queue}/tasks/t{index}",
                            "http_request": {"url": args.url, "http_method": "POST", "body": b'{"kind":"noop"}'}}
    if args.eta_start is not None:
        eta = args.eta_start + index * args.eta_step
        task["schedule_time"] = {"seconds": int(eta), "nanos": int(round((eta % 1) * 1e9)) % 1_000_000_000}
    return task


def create_tasks(client: Any, queues: list[str], args: argparse.Namespace) -> float:
    """Create the tasks round-robin over ``queues``; return the seconds it took."""
    def one(index: int) -> None:
        queue = queues[index % len(queues)]
        client.create_task(parent=queue, task=task_body(args, queue, index))
    started = time.monotonic()
    with ThreadPoolExecutor(CREATE_THREADS) as pool:
        list(pool.map(one, range(args.tasks)))
    return time.monotonic() - started


def main() -> None:
    """Set up, release, report."""
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--transport", choices=("rest", "grpc"), default="rest")
    p.add_argument("--url", required=True)
    p.add_argument("--queues", type=int, default=8)
    p.add_argument("--tasks", type=int, default=8000)
    p.add_argument("--rate", type=float, default=500)
    p.add_argument("--burst", type=int, default=100)
    p.add_argument("--concurrent", type=int, default=1000)
    p.add_argument("--prefix", default="bench")
    p.add_argument("--eta-start", type=float, default=None)
    p.add_argument("--eta-step", type=float, default=0.0)
    p.add_argument("--no-pause", action="store_true", help="create on running queues (scheduled workloads)")
    args = p.parse_args()
    client = client_for(args.endpoint, args.transport)
    queues = create_queues(client, args)
    seconds = create_tasks(client, queues, args)
    resumed_at = time.time()
    if not args.no_pause:
        for name in queues:
            client.resume_queue(name=name)
    print(json.dumps({"create_seconds": seconds, "resumed_at": resumed_at, "queues": queues}), flush=True)


if __name__ == "__main__":
    main()
