"""``ordertasks demo --orders N``: place N orders through the running local stack and watch
every side effect settle, with a live progress bar, then print a summary per kind.

Talks to the checkout API over HTTP only (``GET /api/orders/<id>`` shows each task's
state), so it works against any running stack. Tasks scheduled beyond ``--timeout`` (the
24 h follow-up and the 7-day review request, unless the stack runs with a small
``--delay-scale``) are reported as scheduled, not waited for.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any, TextIO

from ordertasks.handlers.config import Settings
from ordertasks.producer.terminal import plain_help

SETTLED = ("done", "failed")
CATALOG = [("BOOK-1", "Notes on the Analytical Engine", "19.50"), ("MUG-2", "Difference mug", "8.90"),
           ("PEN-3", "Fountain pen", "42.00"), ("INK-4", "Ink, blue-black", "6.25"), ("LAMP-5", "Desk lamp", "64.00")]


def order_body(n: int, rng: random.Random) -> dict[str, Any]:
    """A plausible checkout request for customer ``n``."""
    items = rng.sample(CATALOG, k=rng.randint(1, 3))
    return {
        "customer": {"name": f"Demo Customer {n}", "email": f"customer{n}@example.com"},
        "shipping_address": {"name": f"Demo Customer {n}", "line1": f"{n} Example Street", "city": "Berlin",
                             "postal_code": "10115", "country": "DE"},
        "items": [{"sku": s, "name": name, "quantity": rng.randint(1, 3), "unit_price": p} for s, name, p in items],
        "currency": "EUR",
        "payment_token": "tok_visa",
    }


def call(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One JSON request; returns (status, parsed body)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def place(base: str, n: int, seed: int) -> str:
    """Place order ``n``; return its id (raises on anything but 201/202)."""
    status, body = call("POST", f"{base}/api/checkout", order_body(n, random.Random(seed * 100_003 + n)),
                        {"Idempotency-Key": f"demo-{seed}-{n}"})
    if status not in (201, 202):
        raise RuntimeError(f"checkout {n} answered {status}: {body}")
    return str(body["order_id"])


def awaited(task: dict[str, Any], horizon: datetime) -> bool:
    """Tasks due before the horizon are waited for; later ones are only reported."""
    when = datetime.fromisoformat(task["schedule_time"].replace("Z", "+00:00"))
    return when <= horizon


class Board:
    """The latest state of every order's tasks."""

    def __init__(self, order_ids: Sequence[str]) -> None:
        self.tasks: dict[str, list[dict[str, Any]]] = {o: [] for o in order_ids}

    def refresh(self, base: str, pool: ThreadPoolExecutor) -> None:
        """Fetch every order whose awaited tasks have not all settled."""
        open_ids = [o for o, tasks in self.tasks.items() if not tasks or any(t["state"] not in SETTLED for t in tasks)]
        for order_id, (status, body) in zip(open_ids, pool.map(lambda o: call("GET", f"{base}/api/orders/{o}"), open_ids)):
            if status == 200:
                self.tasks[order_id] = body["tasks"]

    def counts(self, horizon: datetime) -> Counter[tuple[str, str]]:
        """(kind, state) → count over awaited tasks; later tasks count as ``later``."""
        counter: Counter[tuple[str, str]] = Counter()
        for tasks in self.tasks.values():
            for t in tasks:
                counter[(t["kind"], t["state"] if awaited(t, horizon) else "later")] += 1
        return counter


def progress_line(counts: Counter[tuple[str, str]], width: int = 30) -> str:
    """``[#####-----] 120/800 settled  done 118  failed 2``."""
    states = Counter()
    for (_, state), n in counts.items():
        states[state] += n
    total = sum(n for s, n in states.items() if s != "later")
    settled = states["done"] + states["failed"]
    filled = int(width * settled / total) if total else 0
    return f"[{'#' * filled}{'-' * (width - filled)}] {settled}/{total} settled  done {states['done']}  failed {states['failed']}"


def settled_fraction(counts: Counter[tuple[str, str]]) -> float:
    """Share of awaited tasks that are done or failed (1.0 when nothing is awaited)."""
    awaited_ = sum(n for (_, s), n in counts.items() if s != "later")
    settled = sum(n for (_, s), n in counts.items() if s in SETTLED)
    return settled / awaited_ if awaited_ else 1.0


class Progress:
    """The progress bar: redrawn in place on a terminal; otherwise one line per 10 % or per 10 s.

    A log file or CI output gets a handful of lines instead of one per poll.
    """

    STEP, INTERVAL = 0.10, 10.0

    def __init__(self, out: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self.out, self.clock, self.tty = out, clock, out.isatty()
        self.last_step, self.last_time = -1, clock()

    def show(self, counts: Counter[tuple[str, str]], final: bool = False) -> None:
        """Draw or print the current state (the final state is always printed)."""
        line = progress_line(counts)
        if self.tty:
            print("\r" + line, end="", file=self.out, flush=True)
            return
        step, now = int(settled_fraction(counts) / self.STEP), self.clock()
        if final or step > self.last_step or now - self.last_time >= self.INTERVAL:
            print(line, file=self.out, flush=True)
            self.last_step, self.last_time = step, now


def summary(counts: Counter[tuple[str, str]], duplicates: Counter[str]) -> str:
    """Per kind: done, duplicate deliveries absorbed, failed, still pending, scheduled later."""
    kinds = sorted({k for k, _ in counts})
    header = f"{'KIND':<26}{'DONE':>6}{'DUPLICATES':>12}{'FAILED':>8}{'PENDING':>9}{'LATER':>7}"
    rows = [header]
    for kind in kinds:
        pending = sum(n for (k, s), n in counts.items() if k == kind and s not in (*SETTLED, "later"))
        rows.append(f"{kind:<26}{counts[(kind, 'done')]:>6}{duplicates[kind]:>12}{counts[(kind, 'failed')]:>8}"
                    f"{pending:>9}{counts[(kind, 'later')]:>7}")
    return "\n".join(rows)


def duplicate_counts(base: str, order_ids: Sequence[str], pool: ThreadPoolExecutor) -> Counter[str]:
    """Duplicate deliveries each effect absorbed, from the orders' task views."""
    result: Counter[str] = Counter()
    for status, body in pool.map(lambda o: call("GET", f"{base}/api/orders/{o}"), order_ids):
        for task in (body or {}).get("tasks", []) if status == 200 else []:
            result[task["kind"]] += int(task.get("duplicates", 0))
    return result


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Place the orders, watch them settle, print the summary; 1 if anything is left."""
    base = args.url.rstrip("/")
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        order_ids = list(pool.map(lambda n: place(base, n, args.seed), range(1, args.orders + 1)))
        print(f"placed {len(order_ids)} orders in {time.monotonic() - started:.1f}s", file=out, flush=True)
        board, deadline = Board(order_ids), time.monotonic() + args.timeout
        reporter = Progress(out)
        horizon = datetime.now(timezone.utc) + timedelta(seconds=args.timeout)
        while True:
            board.refresh(base, pool)
            counts = board.counts(horizon)
            unsettled = sum(n for (_, s), n in counts.items() if s not in (*SETTLED, "later"))
            finished = unsettled == 0 or time.monotonic() > deadline
            reporter.show(counts, finished)
            if finished:
                break
            time.sleep(args.poll)
        duplicates = duplicate_counts(base, order_ids, pool)
    print(f"\n\n{summary(counts, duplicates)}\n\nfinished in {time.monotonic() - started:.1f}s", file=out)
    return 0 if unsettled == 0 else 1


def main(argv: Sequence[str] | None = None) -> int:
    """``ordertasks demo``."""
    parser = argparse.ArgumentParser(prog="ordertasks demo", description=plain_help(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=20, help="how many orders to place (default 20)")
    parser.add_argument("--url", default=None,
                        help="the checkout API (default: ORDERTASKS_CHECKOUT_URL, else http://127.0.0.1:8080/)")
    parser.add_argument("--concurrency", type=int, default=8, help="checkout requests in flight at once (default 8)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for effects to settle")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between looks at the orders (default 1)")
    parser.add_argument("--seed", type=int, default=int(time.time()),
                        help="makes the orders (and their idempotency keys) repeatable (default: the time)")
    args = parser.parse_args(argv)
    args.url = args.url or Settings.from_env().tasks.checkout_url
    try:
        return run(args, sys.stdout)
    except BrokenPipeError:
        raise                       # the reader went away: ordertasks.cli ends quietly
    except (OSError, RuntimeError) as exc:
        print(f"ordertasks demo: {exc} (is `make dev` running?)", file=sys.stderr)
        return 1
