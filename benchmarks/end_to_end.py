"""``end_to_end``: the whole local stack, checkouts in, every side effect out, exactly once.

    python -m benchmarks.end_to_end [--quick]

Starts ``ordertasks dev`` (emulator, handler under functions-framework with OIDC on and
one worker process per CPU, checkout API, SMTP sink, warehouse stand-in; SQLite and a blob
directory) with ``--delay-scale 0`` and a copy of ``infra/tasks.toml`` whose queues allow
500 dispatches/s and 16 concurrent each. Places N checkouts from 8 concurrent clients and waits until every
task of every order is done (6 per order: three emails, analytics, invoice, warehouse).

Throughput: tasks done / (last effect done - first checkout sent). "Done" is read as the
status views read it (``handlers.effect_records``: the idempotency store plus the far ends
of the create-once kinds); a run with no progress for 30 s fails instead of reporting.
For reference, same run: the rate at which the checkout phase created tasks (orders/s x 6),
measured while the handler already drains them (so it is not the producer's own ceiling).

Exactly-once, checked at the end from the side effects themselves: ``.eml`` files per
(order, kind) from their ``X-Ordertasks-*`` headers, invoice PDFs, the warehouse stand-in's
``GET /notifications`` (and how many repeat POSTs it absorbed), analytics fact rows and
the sharded daily total, and ``GET /api/orders/<id>`` (every task ``done``; absorbed
duplicate deliveries). ``duplicates`` counts effects performed twice, ``lost`` effects
missing.

CPU per order by part (each process of the stack, the load generator too) is recorded, and
from it the **CPU-bound ceiling** of the stack, *computed* (not a baseline): ``cores x 1000 /
CPU ms per task``, the rate
the same code would reach with every core to itself and no pipeline stall. On a machine
shared with other work the measured rate is below it by the share of the cores the stack
did not get (``cpu_share_of_machine``); the ceiling is what a change of code moves.

Targets: >= 300 tasks/s; the product's CPU (every process but the stand-ins: SMTP sink,
warehouse, load generator) <= 5.5 ms per task; 0 duplicates; 0 lost.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

from benchmarks._common import (REPO_ROOT, Proc, free_port, http_ok, median, parser, port_open, print_table,
                                print_targets, python_module, target, write_results)
from benchmarks._loadgen import run_load
from benchmarks.checkout_latency import checkout_request
from ordertasks.handlers.config import Settings, load_catalog
from ordertasks.handlers.effect_records import RecordedEffects
from ordertasks.handlers.ports import EffectState
from ordertasks.handlers.wiring import build_stores, recorded_effects

NAME = "end_to_end"
# Processes that stand in for what a shop has anyway (its SMTP relay, its warehouse, its customers):
# their CPU is reported apart from the product's (issue 33).
STAND_INS = frozenset({"mailsink", "warehouse", "load generator"})
# One task per kind of the catalog the run copies (fast_catalog changes only queue rates).
KINDS_PER_ORDER = len(load_catalog(REPO_ROOT / "infra" / "tasks.toml").kinds)
EMAIL_KINDS = ("send_confirmation_email", "send_followup_email", "request_review")
CLIENTS = 8


def fast_catalog(tmp: Path) -> Path:
    """A copy of the catalog whose queues allow a high rate (everything else unchanged)."""
    text = (REPO_ROOT / "infra" / "tasks.toml").read_text()
    for key, value in (("max_dispatches_per_second", "500"), ("max_burst_size", "500"),
                       ("max_concurrent_dispatches", "16")):
        text = re.sub(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
    path = tmp / "tasks-bench.toml"
    path.write_text(text)
    return path


class DevStack:
    """``ordertasks dev`` on free ports with its data under ``tmp``."""

    def __init__(self, tmp: Path, config: Path) -> None:
        self.data = tmp / "data"
        self.ports = {name: free_port() for name in ("emulator", "handler", "checkout", "smtp", "warehouse", "console")}
        argv = python_module("cli", "dev", "--data-dir", str(self.data), "--delay-scale", "0",
                             "--config", str(config), *[a for n, p in self.ports.items()
                                                          for a in (f"--{n}-port", str(p))])
        self.proc = Proc(argv, tmp / "dev.log")
        self.config = config
        self._effects: RecordedEffects | None = None

    def url(self, name: str) -> str:
        """Base URL of a part."""
        return f"http://127.0.0.1:{self.ports[name]}"

    def start(self) -> "DevStack":
        """Start and wait until the checkout API and the handler answer."""
        self.proc.start(lambda: http_ok(self.url("checkout") + "/healthz") and port_open(self.ports["handler"]),
                        timeout=120)
        return self

    def done_count(self) -> int:
        """Effects done, read as every status view reads them (``handlers.effect_records``): the
        idempotency store's done records plus the far-end records of the create-once kinds,
        which keep no idempotency record when their first attempt succeeds."""
        if self._effects is None:
            if not (self.data / "ordertasks.db").exists():
                return 0
            settings = Settings.from_env({"ORDERTASKS_DATA_DIR": str(self.data), "ORDERTASKS_CONFIG": str(self.config)})
            self._effects = recorded_effects(settings, build_stores(settings))
        return sum(counts.get(EffectState.DONE, 0) for counts in self._effects.effect_counts().values())


def descendants(pid: int) -> dict[int, str]:
    """Every process under ``pid``: its id and a short name (for the CPU breakdown)."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,args="], capture_output=True, text=True).stdout
    children: dict[int, list[tuple[int, str]]] = {}
    for line in out.splitlines():
        child_id, parent_id, args = line.split(None, 2)
        children.setdefault(int(parent_id), []).append((int(child_id), args))
    found: dict[int, str] = {}
    todo = [pid]
    while todo:
        for child, args in children.get(todo.pop(), []):
            found[child] = _short_name(args)
            todo.append(child)
    return found


def _short_name(args: str) -> str:
    for name in ("mailsink", "warehouse", "emulator", "handler", "checkout", "console"):
        if name in args:
            return name
    return args.split()[-1][:20]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 when it is gone or not on Linux)."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds every process on the machine has used since boot (``/proc/stat``; 0 elsewhere)."""
    try:
        fields = open("/proc/stat").readline().split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def cpu_by_part(before: dict[int, float], names: dict[int, str]) -> dict[str, float]:
    """CPU seconds each part of the stack used since ``before``."""
    used: dict[str, float] = {}
    for pid, name in names.items():
        used[name] = used.get(name, 0.0) + cpu_seconds(pid) - before[pid]
    return used


def get_json(url: str) -> Any:
    """``GET url`` as JSON."""
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.loads(resp.read())


def place_orders(stack: DevStack, orders: int) -> tuple[list[str], float, float]:
    """Send the checkouts; their order ids, the start time and the seconds the phase took."""
    started = time.time()
    ids: list[str] = []
    result = run_load(stack.url("checkout") + "/api/checkout", checkout_request(), concurrency=CLIENTS,
                      count=orders)
    if set(result.statuses) != {201}:
        raise RuntimeError(f"checkout answered {dict(result.statuses)}")
    seconds = time.time() - started
    with sqlite3.connect(f"file:{stack.data / 'ordertasks.db'}?mode=ro", uri=True, timeout=5) as conn:
        ids = [row[0] for row in conn.execute("SELECT order_id FROM orders")]
    return ids, started, seconds


def wait_done(stack: DevStack, expected: int, stall: float = 30.0) -> float:
    """Poll until ``expected`` effects are done; the time it ended (``RuntimeError`` after ``stall`` s
    without progress)."""
    last, changed = -1, time.monotonic()
    while True:
        count = stack.done_count()
        if count >= expected:
            return time.time()
        if count != last:
            last, changed = count, time.monotonic()
        elif time.monotonic() - changed > stall:
            # A stall is a failure to measure, never a figure: its idle seconds would count as work.
            raise RuntimeError(f"stalled at {count}/{expected} effects done (no progress for {stall:.0f} s)")
        time.sleep(0.25)   # each poll lists the invoices and counts the facts: keep it off the cores


def verify(stack: DevStack, order_ids: list[str]) -> dict[str, Any]:
    """Count each side effect per order: duplicates and losses (see the module docstring)."""
    wanted = set(order_ids)
    mails: Counter[tuple[str, str]] = Counter()
    for path in (stack.data / "mail").glob("*.eml"):
        with path.open("rb") as fh:
            headers = BytesHeaderParser().parse(fh)
        mails[(str(headers["X-Ordertasks-Order"]), str(headers["X-Ordertasks-Kind"]))] += 1
    pdfs = {p.stem for p in (stack.data / "blobs" / "invoices").glob("*.pdf")}
    warehouse = get_json(stack.url("warehouse") + "/notifications")
    keys = Counter(n["key"] for n in warehouse["notifications"])
    with sqlite3.connect(f"file:{stack.data / 'ordertasks.db'}?mode=ro", uri=True, timeout=5) as conn:
        facts = {row[0] for row in conn.execute("SELECT order_id FROM analytics_orders")}
        daily_orders = conn.execute("SELECT COALESCE(SUM(orders), 0) FROM analytics_daily").fetchone()[0]
    views = [get_json(f"{stack.url('checkout')}/api/orders/{oid}") for oid in order_ids]
    states = Counter(t["state"] for v in views for t in v["tasks"])
    absorbed = sum(t["duplicates"] for v in views for t in v["tasks"])
    mail_dupes = sum(n - 1 for n in mails.values() if n > 1)
    mail_lost = sum(1 for oid in wanted for kind in EMAIL_KINDS if (oid, kind) not in mails)
    checks = {
        "emails": {"present": len(mails), "duplicates": mail_dupes, "lost": mail_lost},
        "invoices": {"present": len(pdfs & wanted), "duplicates": 0, "lost": len(wanted - pdfs)},
        "warehouse": {"present": len(keys), "duplicates": sum(n - 1 for n in keys.values() if n > 1),
                      "lost": max(0, len(wanted) - len(keys)),
                      "repeat_posts_absorbed": warehouse["requests"] - len(keys)},
        "analytics": {"present": len(facts & wanted), "duplicates": max(0, daily_orders - len(facts)),
                      "lost": len(wanted - facts), "daily_total_orders": daily_orders},
    }
    return {"checks": checks, "task_states": dict(states), "absorbed_duplicate_deliveries": absorbed,
            "duplicates": sum(c["duplicates"] for c in checks.values()),
            "lost": sum(c["lost"] for c in checks.values())}


def one_run(orders: int) -> dict[str, Any]:
    """A fresh stack, the checkouts, the drain, the verification."""
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as name:
        tmp = Path(name)
        stack = DevStack(tmp, fast_catalog(tmp)).start()
        try:
            # Where the CPU goes: two cores run every part, so this is the profile of a miss.
            names = descendants(stack.proc.pid)
            before = {pid: cpu_seconds(pid) for pid in names}
            generator_before, machine_before = time.process_time(), machine_busy_seconds()
            ids, started, checkout_seconds = place_orders(stack, orders)
            ended = wait_done(stack, orders * KINDS_PER_ORDER)
            cpu = cpu_by_part(before, names)
            machine = machine_busy_seconds() - machine_before
            cpu["load generator"] = time.process_time() - generator_before
            outcome = verify(stack, ids)
        finally:
            stack.proc.stop()
    elapsed = ended - started
    done = outcome["task_states"].get("done", 0)
    cpu_ms_per_task = sum(cpu.values()) * 1000 / max(done, 1)
    return {"orders": len(ids), "tasks_done": done, "elapsed_s": elapsed, "tasks_per_s": done / elapsed,
            "cpu_ms_per_task": cpu_ms_per_task,
            "cpu_bound_ceiling_tasks_per_s": (os.cpu_count() or 1) * 1000 / cpu_ms_per_task,
            "checkout_s": checkout_seconds, "enqueue_tasks_per_s": orders * KINDS_PER_ORDER / checkout_seconds,
            "cpu_ms_per_order": {k: round(v * 1000 / orders, 2) for k, v in cpu.items()},
            "cpu_share_of_machine": sum(cpu.values()) / (elapsed * (os.cpu_count() or 1)),
            # Everything else that ran meanwhile (other people's jobs on a shared machine).
            "other_work_share_of_machine": max(0.0, machine - sum(cpu.values())) / (elapsed * (os.cpu_count() or 1)),
            **outcome}


def main(argv: list[str] | None = None) -> int:
    """Measure, print, write ``results/end_to_end.json``."""
    args = parser(NAME, __doc__).parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    orders = 100 if args.quick else 1000
    runs = []
    for r in range(repeats):
        runs.append(one_run(orders))
        print(f"  repeat {r + 1}: {runs[-1]['tasks_per_s']:.0f} tasks/s, checkout phase "
              f"{runs[-1]['enqueue_tasks_per_s']:.0f} tasks/s, duplicates {runs[-1]['duplicates']}, "
              f"lost {runs[-1]['lost']}", flush=True)
    return report(args, repeats, orders, runs)


def report(args: Any, repeats: int, orders: int, runs: list[dict[str, Any]]) -> int:
    """Table, targets, results file."""
    rate = median(r["tasks_per_s"] for r in runs)
    enqueue = median(r["enqueue_tasks_per_s"] for r in runs)
    duplicates, lost = max(r["duplicates"] for r in runs), max(r["lost"] for r in runs)
    ceiling = median(r["cpu_bound_ceiling_tasks_per_s"] for r in runs)
    rows = [("end to end (tasks done/s)", rate, median(r["elapsed_s"] for r in runs)),
            ("checkout phase (tasks created/s while the handler drains)", enqueue, median(r["checkout_s"] for r in runs)),
            (f"CPU-bound ceiling, computed ({os.cpu_count()} cores / CPU per task)", ceiling, "")]
    print_table(f"{NAME}: {orders} checkouts x {KINDS_PER_ORDER} tasks, {CLIENTS} clients, median of {repeats}",
                rows, ("phase", "tasks/s", "seconds"))
    last = runs[-1]
    print_table("exactly-once (last repeat)", [(k, v["present"], v["duplicates"], v["lost"])
                                                for k, v in last["checks"].items()],
                ("effect", "present", "duplicates", "lost"))
    cpu = last["cpu_ms_per_order"]
    print_table(f"CPU per order by part (last repeat; the stack kept {last['cpu_share_of_machine'] * 100:.0f} % of the "
                f"machine busy, other work {last['other_work_share_of_machine'] * 100:.0f} %)",
                [(k, v, v / KINDS_PER_ORDER) for k, v in sorted(cpu.items(), key=lambda kv: -kv[1])],
                ("part", "CPU ms/order", "CPU ms/task"))
    product = sum(v for k, v in cpu.items() if k not in STAND_INS) / KINDS_PER_ORDER
    stand_ins = sum(v for k, v in cpu.items() if k in STAND_INS) / KINDS_PER_ORDER
    print(f"product CPU {product:.2f} ms/task; stand-ins ({', '.join(sorted(STAND_INS))}) {stand_ins:.2f} ms/task")
    targets = [target("end-to-end rate", rate, ">=", 300, "tasks/s",
                      baseline=f"checkout phase {enqueue:.0f} tasks/s, same run"),
               target("product CPU per task (stand-ins apart)", product, "<=", 5.5, "ms"),
               target("duplicate effects", duplicates, "<=", 0), target("lost effects", lost, "<=", 0)]
    print_targets(targets)
    write_results(NAME, {
        "parameters": {"orders": orders, "kinds_per_order": KINDS_PER_ORDER, "clients": CLIENTS, "repeats": repeats,
                       "quick": args.quick, "queue_rate": 500, "queue_concurrency": 16, "delay_scale": 0},
        "figures": {"tasks_per_s": rate, "enqueue_tasks_per_s": enqueue, "duplicates": duplicates, "lost": lost,
                    "cpu_ms_per_task": median(r["cpu_ms_per_task"] for r in runs),
                    "cpu_bound_ceiling_tasks_per_s_computed": ceiling,
                    "product_cpu_ms_per_task": product, "stand_ins_cpu_ms_per_task": stand_ins,
                    "repeats": runs},
        "baseline": {"name": "checkout phase task creation rate (while the handler drains)", "tasks_per_s": enqueue},
        "ratio": rate / enqueue if enqueue else float("nan"), "targets": targets})
    return 0


if __name__ == "__main__":
    sys.exit(main())
