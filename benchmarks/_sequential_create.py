"""The peers' own workload: create tasks one after another with the official client.

    python _sequential_create.py --endpoint 127.0.0.1:P --transport grpc|rest --tasks N --prefix run1

gcloud-tasks-emulator's benchmark, and what a producer without batching does: one paused
queue, a short warm-up (the connection, the client's first-call work), then ``--tasks``
CreateTask calls, each waiting for the previous answer. One JSON line reports the rate and
the milliseconds per create. Only the client of the venv running it is imported (through
``_tasks_driver.client_for``), so the same script runs in ours and in the peer's venv.
"""

from __future__ import annotations

import argparse
import json
import time

from _tasks_driver import PARENT, client_for

WARM_UP = 20
TASK = {"http_request": {"url": "http://127.0.0.1:9/noop", "http_method": "POST", "body": b'{"kind":"noop"}'}}


def main() -> None:
    """Create the queue, warm up, time the creates, report."""
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--transport", choices=("rest", "grpc"), default="grpc")
    p.add_argument("--tasks", type=int, default=1000)
    p.add_argument("--prefix", default="sequential")
    args = p.parse_args()
    client = client_for(args.endpoint, args.transport)
    queue = f"{PARENT}/queues/{args.prefix}"
    client.create_queue(parent=PARENT, queue={"name": queue})
    client.pause_queue(name=queue)  # nothing dispatched: the creates alone are measured
    for _ in range(WARM_UP):
        client.create_task(parent=queue, task=TASK)
    started = time.perf_counter()
    for _ in range(args.tasks):
        client.create_task(parent=queue, task=TASK)
    seconds = time.perf_counter() - started
    print(json.dumps({"tasks": args.tasks, "seconds": seconds, "tasks_per_s": args.tasks / seconds,
                      "ms_per_create": seconds / args.tasks * 1000}), flush=True)


if __name__ == "__main__":
    main()
