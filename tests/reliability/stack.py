"""The whole local stack for reliability tests, one ``ServerProcess`` per part.

``ordertasks dev`` stops every part when one dies, which is right for a developer and wrong
for a crash test. So this harness starts the *same* five children with the *same* command
lines and environment (taken from ``infra.devstack``), but keeps each one separately so a
test can ``kill -9`` one, restart it on the same port and data, and read its memory.

It also keeps the ledger the issue asks for: for each order, each task the outbox owes is
``done`` or has a failed-task record, and each effect happened at most once, counted at the
far end (``.eml`` files, warehouse notifications, invoice files, analytics facts).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from ordertasks.handlers.backends.sqlite import SqliteStore
from ordertasks.handlers.wiring import recorded_effects
from ordertasks.infra import devstack
from ordertasks.infra.config import REPO_ROOT, Catalog, Settings, load_catalog
from ordertasks.handlers.settings import StoreSettings
from ordertasks.producer.replay_target import write_stack_record
from tests.support.samples import CHECKOUT_BODY
from tests.support.servers import ServerProcess, free_port, wait_until

PARTS = ("smtp", "warehouse", "emulator", "handler", "checkout")
# Every kind runs within seconds: the follow-up after 0.9 s, the review request after 6 s.
DELAY_SCALE = "0.00001"
def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and its descendants in KiB, from ``/proc/<pid>/status``.

    Descendants count because the handler serves from gunicorn workers under a master.
    """
    total = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            total += int(line.split()[1])
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            total += rss_kib(int(child))
    return total


@dataclass
class Ledger:
    """Per (order, kind): done, failed record, and how often the effect was seen at the far end."""

    owed: set[tuple[str, str]] = field(default_factory=set)
    done: set[tuple[str, str]] = field(default_factory=set)
    failed: set[tuple[str, str]] = field(default_factory=set)
    cancelled: set[tuple[str, str]] = field(default_factory=set)
    effects: Counter[tuple[str, str]] = field(default_factory=Counter)
    failed_history: dict[tuple[str, str], int] = field(default_factory=dict)   # failed record → history length

    @property
    def lost(self) -> set[tuple[str, str]]:
        """Owed tasks neither done, cancelled nor in the failed-task log."""
        return self.owed - self.done - self.failed - self.cancelled

    @property
    def duplicates(self) -> dict[tuple[str, str], int]:
        """Effects seen more than once at the far end."""
        return {key: n for key, n in self.effects.items() if n > 1}

    def summary(self) -> dict[str, int]:
        """The figures a report shows."""
        return {"tasks_created": len(self.owed), "done": len(self.done & self.owed),
                "cancelled": len(self.cancelled & self.owed - self.done),
                "failed_records": len(self.failed & self.owed), "lost": len(self.lost),
                "duplicates": len(self.duplicates)}


class LocalStack:
    """The five parts of ``ordertasks dev`` on free ports, each its own restartable process."""

    def __init__(self, root: Path, config: Path, warehouse_mode: str = "ok", env: dict[str, str] | None = None,
                 extra_argv: dict[str, list[str]] | None = None, sqlite_path: Path | None = None) -> None:
        self.root, self.config = root, config
        self.data_dir = root / "var"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.sqlite_path = sqlite_path or self.data_dir / "ordertasks.db"
        if sqlite_path is not None:
            env = {**(env or {}), "ORDERTASKS_SQLITE_PATH": str(sqlite_path)}
        self.ports = {name: free_port() for name in PARTS}
        args = devstack.parse(self._dev_argv(warehouse_mode))
        self.env_overrides = dict(env or {})
        self.env = {**devstack.child_env(args), **self.env_overrides}
        self.children = {child.name: child for child in devstack.children(args)}
        for name, more in (extra_argv or {}).items():
            self.children[name].argv += more
        self.servers = {name: self._server(name) for name in PARTS}
        # As `ordertasks dev` does: operator commands replay to the handler recorded here.
        write_stack_record(self.data_dir, f"http://127.0.0.1:{self.ports['handler']}/",
                           f"127.0.0.1:{self.ports['emulator']}", "")
        self.session = requests.Session()
        devstack.seed_demo_catalogue(self.env)

    @property
    def kinds_per_order(self) -> int:
        """How many tasks each order owes: one per kind of the stack's catalog."""
        return len(load_catalog(self.config).kinds)

    def _dev_argv(self, warehouse_mode: str) -> list[str]:
        argv = ["--data-dir", str(self.data_dir), "--config", str(self.config), "--delay-scale", DELAY_SCALE,
                "--warehouse-mode", warehouse_mode]
        for name, port in self.ports.items():
            argv += [f"--{name}-port", str(port)]
        return argv

    def _server(self, name: str) -> ServerProcess:
        child = self.children[name]
        log = self.data_dir / "logs"
        log.mkdir(exist_ok=True)
        return ServerProcess(child.argv, child.port, env=self.env, log_path=log / f"{name}.log", ready=child.healthy)

    # --- lifecycle --------------------------------------------------------------------

    def start(self, *names: str) -> "LocalStack":
        """Start the named parts (all, dependencies first, when none are named)."""
        for name in names or PARTS:
            self.servers[name].start(timeout=90)
        return self

    def stop(self) -> None:
        """Stop every part (reverse order)."""
        for name in reversed(PARTS):
            self.servers[name].stop()
        self.session.close()

    def kill9(self, name: str) -> None:
        """SIGKILL one part, as a crash would."""
        self.servers[name].kill9()

    def restart(self, name: str) -> None:
        """Start a stopped or killed part again on the same port and data."""
        self.servers[name] = self._server(name)
        self.servers[name].start(timeout=90)

    def pids(self) -> dict[str, int]:
        """Process id of each running part."""
        return {name: s.proc.pid for name, s in self.servers.items() if s.proc and s.proc.poll() is None}

    def rss(self) -> dict[str, int]:
        """VmRSS (KiB) of each running part."""
        return {name: rss_kib(pid) for name, pid in self.pids().items()}

    # --- talking to it ----------------------------------------------------------------

    def url(self, name: str) -> str:
        """Base URL of a part."""
        return f"http://127.0.0.1:{self.ports[name]}"

    def catalog(self) -> Catalog:
        """The catalog this stack runs."""
        return load_catalog(self.config)

    def catalog_email(self) -> str:
        """The dispatcher service account: the one identity the handler accepts."""
        return self.catalog().service_account_email("dispatcher")

    def cli_env(self) -> dict[str, str]:
        """What an operator exports to point the CLI at this stack."""
        return {**os.environ, **self.env_overrides, "ORDERTASKS_DATA_DIR": str(self.data_dir),
                "ORDERTASKS_CONFIG": str(self.config),
                "CLOUD_TASKS_EMULATOR_HOST": f"127.0.0.1:{self.ports['emulator']}",
                "ORDERTASKS_HANDLER_URL": f"http://127.0.0.1:{self.ports['handler']}/",
                "ORDERTASKS_DELAY_SCALE": DELAY_SCALE}

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``ordertasks ARGS`` as an operator would."""
        return subprocess.run([sys.executable, "-m", "cli", *args], env=self.cli_env(), cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=120)

    def warehouse_mode(self, mode: str) -> None:
        """Switch the warehouse stand-in's behaviour at run time."""
        self.session.post(f"{self.url('warehouse')}/mode", json={"mode": mode}, timeout=5).raise_for_status()

    def checkout(self, body: dict[str, Any] | None = None, **headers: str) -> requests.Response:
        """``POST /api/checkout`` with a valid order (or ``body``)."""
        return self.session.post(f"{self.url('checkout')}/api/checkout", json=body or CHECKOUT_BODY,
                                 headers=headers, timeout=60)

    def place_orders(self, n: int, workers: int = 8) -> list[str]:
        """Place ``n`` orders concurrently; return their ids (each answer must be 201 or 202)."""
        def one(_: int) -> str:
            resp = requests.post(f"{self.url('checkout')}/api/checkout", json=CHECKOUT_BODY, timeout=60)
            assert resp.status_code in (201, 202), resp.text
            return str(resp.json()["order_id"])
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(one, range(n)))

    @contextmanager
    def store(self) -> Iterator[SqliteStore]:
        """The stack's SQLite store, opened read-mostly by the test."""
        store = SqliteStore(self.sqlite_path)
        try:
            yield store
        finally:
            store.close()

    # --- the ledger -------------------------------------------------------------------

    def recorded(self, store: SqliteStore) -> Any:
        """Effect states over ``store`` as the status views read them (create-once kinds' far ends too)."""
        settings = Settings(store=StoreSettings(data_dir=self.data_dir, sqlite_path=self.sqlite_path),
                            catalog_path=self.config)
        return recorded_effects(settings, store)

    def far_end_effects(self) -> Counter[tuple[str, str]]:
        """(order, kind) → times its effect was observed where it lands."""
        seen: Counter[tuple[str, str]] = Counter()
        for path in (self.data_dir / "mail").glob("*.eml"):
            seen[_mail_key(path.read_bytes())] += 1
        notes = self.session.get(f"{self.url('warehouse')}/notifications", timeout=30).json()["notifications"]
        for note in notes:
            order_id, _, kind = note["key"].partition(":")
            seen[(order_id, kind)] += 1
        for pdf in (self.data_dir / "blobs").rglob("*.pdf"):
            seen[(pdf.stem, "generate_invoice")] += 1
        return seen

    def ledger(self, order_ids: Iterable[str]) -> Ledger:
        """The ledger over ``order_ids``, from the store and the far ends."""
        ids, ledger = set(order_ids), Ledger()
        with self.store() as store:
            for order_id in ids:
                ledger.owed |= {(order_id, e.kind) for e in store.orders.outbox_for(order_id)}
                for kind in {k for _, k in ledger.owed}:
                    effect = self.recorded(store).get_effect(order_id, kind)
                    if effect is not None and effect.state == "done":
                        ledger.done.add((order_id, kind))
                    elif effect is not None and effect.state == "cancelled":
                        ledger.cancelled.add((order_id, kind))
                    if kind == "record_analytics" and store.analytics.get_fact(order_id) is not None:
                        ledger.effects[(order_id, kind)] += 1
            records = [f for f in store.failed.list_failed(limit=1_000_000) if f.order_id in ids]
            ledger.failed = {(f.order_id, f.kind) for f in records}
            ledger.failed_history = {(f.order_id, f.kind): len(f.history) for f in records}
        ledger.effects.update({k: n for k, n in self.far_end_effects().items() if k[0] in ids})
        return ledger

    def wait_accounted(self, order_ids: list[str], timeout: float) -> Ledger:
        """Poll until every owed task of ``order_ids`` is done or failed; return the ledger."""
        def settled() -> Ledger | None:
            ledger = self.ledger(order_ids)
            return ledger if len(ledger.owed) == self.kinds_per_order * len(set(order_ids)) and not ledger.lost else None
        return wait_until(settled, timeout=timeout, interval=0.5, what=f"{len(order_ids)} orders accounted for")


def _mail_key(raw: bytes) -> tuple[str, str]:
    order = re.search(rb"^X-Ordertasks-Order: (.+?)\r?$", raw, re.M)
    kind = re.search(rb"^X-Ordertasks-Kind: (.+?)\r?$", raw, re.M)
    return (order.group(1).decode() if order else "?", kind.group(1).decode() if kind else "?")
