"""``ordertasks dev`` runs what the catalog uses: our checkout only with a ``[checkout]`` table,
the warehouse stand-in only when a kind posts to ``${ORDERTASKS_WAREHOUSE_URL}``; the flags
``--[no-]checkout`` and ``--[no-]warehouse`` say otherwise. The banner names only what runs."""

from __future__ import annotations

import os
import re
import shlex
import socket
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests

from ordertasks.handlers.config import Settings
from ordertasks.infra.config import DEFAULT_CATALOG
from ordertasks.infra.devstack import banner, child_env, parse, second_terminal_exports
from ordertasks.producer.library import OrderTasks
from ordertasks.producer.replay_target import stack_record_path
from tests.devstack.conftest import BANNER_END, DevStack, place_order, start_dev_banner
from tests.support.samples import catalog_without, fast_catalog, library_order
from tests.support.servers import ServerProcess, free_port, http_ok, port_open, wait_until

EVERY_PART = ("emulator", "handler", "checkout", "smtp", "warehouse", "console")
ALWAYS = {"emulator", "handler", "smtp", "console"}
SHOP_TABLES = ("checkout", "queues.ordertasks-warehouse", "kinds.notify_warehouse")
EXPORT = re.compile(r"^\s*export (?P<name>[A-Z_][A-Z0-9_]*)=(?P<value>\S+)\s*$", re.M)
WAREHOUSE_WEBHOOK_KIND = """
[kinds.ship_it]
queue = "ordertasks-email"
delay_seconds = 0

[kinds.ship_it.webhook]
url = "${ORDERTASKS_WAREHOUSE_URL:-http://127.0.0.1:8090/notifications}"
"""
NOTIFY_ELSEWHERE = """
[kinds.notify_warehouse.webhook]
url = "https://wms.shop.example/notifications"
"""


def shop_catalog(root: Path) -> Path:
    """A shop's catalog: its own checkout (no ``[checkout]``), no warehouse kind or queue, short backoffs."""
    return fast_catalog(root, source=catalog_without(root / "shop.toml", *SHOP_TABLES))


def with_tables(path: Path, source: Path, extra: str) -> Path:
    """``source`` plus ``extra`` TOML, written to ``path``."""
    path.write_text(source.read_text() + extra)
    return path


def parts(*argv: str) -> set[str]:
    """The parts ``ordertasks dev ARGV`` would run."""
    return set(parse([*argv, "--data-dir", "var"]).parts)


# What runs, decided from the catalog and the flags.

def test_the_shipped_catalog_runs_every_part() -> None:
    assert parts() == set(EVERY_PART)


def test_a_shop_catalog_with_its_own_checkout_and_no_warehouse_runs_four_parts(tmp_path: Path) -> None:
    assert parts("--config", str(shop_catalog(tmp_path))) == ALWAYS


@pytest.mark.parametrize(("flags", "expected"), [
    (["--no-checkout"], ALWAYS | {"warehouse"}),
    (["--no-warehouse"], ALWAYS | {"checkout"}),
    (["--no-checkout", "--no-warehouse"], ALWAYS),
])
def test_flags_leave_out_what_the_shipped_catalog_uses(flags: list[str], expected: set[str]) -> None:
    assert parts(*flags) == expected


@pytest.mark.parametrize(("flags", "expected"), [
    (["--checkout"], ALWAYS | {"checkout"}),
    (["--warehouse"], ALWAYS | {"warehouse"}),
    (["--checkout", "--warehouse"], set(EVERY_PART)),
])
def test_flags_add_what_a_shop_catalog_does_not_use(tmp_path: Path, flags: list[str], expected: set[str]) -> None:
    assert parts("--config", str(shop_catalog(tmp_path)), *flags) == expected


def test_a_webhook_kind_on_the_warehouse_variable_brings_the_stand_in(tmp_path: Path) -> None:
    config = with_tables(tmp_path / "ship.toml", shop_catalog(tmp_path), WAREHOUSE_WEBHOOK_KIND)
    assert parts("--config", str(config)) == ALWAYS | {"warehouse"}


def test_notify_warehouse_pointed_at_a_real_warehouse_needs_no_stand_in(tmp_path: Path) -> None:
    config = with_tables(tmp_path / "wms.toml", DEFAULT_CATALOG, NOTIFY_ELSEWHERE)
    assert parts("--config", str(config)) == ALWAYS | {"checkout"}


def test_absent_parts_are_not_named_to_the_children_or_the_second_terminal(tmp_path: Path) -> None:
    args = parse(["--config", str(shop_catalog(tmp_path)), "--checkout-port", "9080", "--data-dir", "var"])
    env = child_env(args)
    for name in ("ORDERTASKS_CHECKOUT_URL", "ORDERTASKS_WAREHOUSE_URL"):
        assert env.get(name) == os.environ.get(name), name     # what the developer's shell says, if anything
    assert not any("CHECKOUT" in line for line in second_terminal_exports(args))


def test_without_our_checkout_the_banner_shows_the_library_call(tmp_path: Path) -> None:
    text = banner(parse(["--config", str(shop_catalog(tmp_path)), "--data-dir", "var"]))
    assert "curl" not in text and "/api/checkout" not in text and "products" not in text
    assert "warehouse" not in text
    assert "from ordertasks import OrderTasks" in text and "tasks.schedule(order)" in text
    assert "docs/library.md" in text and (Path(__file__).parents[2] / "docs" / "library.md").exists()


# The stack a shop with its own checkout runs.

class ShopStack:
    """A running ``ordertasks dev`` on a shop catalog, as its user sees it."""

    def __init__(self, root: Path, server: ServerProcess, ports: dict[str, int]) -> None:
        self.root, self.server, self.ports = root, server, ports
        self.data_dir = root / "var"

    def output(self) -> str:
        """Everything ``ordertasks dev`` printed."""
        return (self.root / "dev.log").read_text(encoding="utf-8", errors="replace")

    def banner(self) -> str:
        """The banner, from its first line to its last."""
        text = self.output()
        return text[text.index("ordertasks local stack is up"):text.index(BANNER_END) + len(BANNER_END)]

    def second_terminal(self) -> dict[str, str]:
        """The settings of a terminal that ran the banner's ``export`` lines (and nothing of ours)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ORDERTASKS_", "CLOUD_TASKS_"))}
        return env | {m["name"]: shlex.split(m["value"])[0] for m in EXPORT.finditer(self.banner())}


def bound_not_listening(port: int) -> socket.socket:
    """A socket holding ``port``: the stack's port check would refuse it, yet nothing answers on it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    return sock


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShopStack]:
    """The stack on a shop catalog, with the checkout's and the stand-in's ports held by others."""
    root = tmp_path_factory.mktemp("shop")
    config, ports = shop_catalog(root), {name: free_port() for name in EVERY_PART}
    (root / "var").mkdir()
    held = [bound_not_listening(ports["checkout"]), bound_not_listening(ports["warehouse"])]
    try:
        server = start_dev_banner(root / "var", config, ports)
        try:
            yield ShopStack(root, server, ports)
        finally:
            server.stop()
    finally:
        for sock in held:
            sock.close()


def test_only_the_parts_the_catalog_uses_run(shop: ShopStack) -> None:
    ready = set(re.findall(r"^  (\w+)\s+ready on 127\.0\.0\.1:\d+$", shop.output(), re.M))
    assert ready == ALWAYS
    assert {p.stem for p in (shop.data_dir / "logs").glob("*.log")} == ALWAYS
    assert all(port_open(shop.ports[name]) for name in ALWAYS)
    # Held but never listened on: the stack neither checked nor used them.
    assert not port_open(shop.ports["checkout"]) and not port_open(shop.ports["warehouse"])
    assert "checkout   not started: the catalog has no [checkout] table (--checkout starts it); " \
           "--checkout-port unused" in shop.output()
    assert "warehouse  not started: no kind of the catalog posts to ${ORDERTASKS_WAREHOUSE_URL}" in shop.output()
    assert http_ok(shop.ports["console"]) and stack_record_path(shop.data_dir).exists()


def test_the_banner_names_only_what_runs(shop: ShopStack) -> None:
    text = shop.banner()
    for name in ALWAYS:
        assert f"127.0.0.1:{shop.ports[name]}" in text, name
    assert str(shop.ports["checkout"]) not in text and str(shop.ports["warehouse"]) not in text
    assert "curl" not in text and "warehouse" not in text and "Products" not in text
    assert "  from ordertasks import OrderTasks\n  with OrderTasks.from_env() as tasks:" in text


def test_an_order_the_shops_code_schedules_gets_its_email(shop: ShopStack) -> None:
    settings = Settings.from_env(shop.second_terminal())
    assert settings.tasks.delay_scale == 0.001      # exported: the shop's code schedules as the stack would
    order_id = "ord_shop_library"
    with OrderTasks.from_settings(settings) as tasks:
        results = tasks.schedule(library_order(order_id, datetime.now(timezone.utc).isoformat()))
        assert {r.state for r in results} == {"created"}
        wait_until(lambda: states(tasks, order_id).get("send_confirmation_email") == "done", timeout=30,
                   what="the confirmation email")
    header = f"X-Ordertasks-Order: {order_id}".encode()
    assert [p for p in (shop.data_dir / "mail").glob("*.eml") if header in p.read_bytes()]


def states(tasks: OrderTasks, order_id: str) -> dict[str, str]:
    """kind → state of an order, as the library reports it."""
    return {t["kind"]: t["state"] for t in tasks.status(order_id)["tasks"]}


def test_flags_start_our_checkout_and_the_stand_in_for_a_shop_catalog(tmp_path: Path) -> None:
    config, ports = shop_catalog(tmp_path), {name: free_port() for name in EVERY_PART}
    (tmp_path / "var").mkdir()
    server = start_dev_banner(tmp_path / "var", config, ports, "--checkout", "--warehouse")
    try:
        stack = DevStack(tmp_path / "var", config, ports, server)
        assert all(port_open(port) for port in ports.values())
        assert f"http://127.0.0.1:{ports['checkout']}/api/checkout" in server_banner(tmp_path)
        assert requests.get(f"{stack.warehouse}/healthz", timeout=5).ok
        order_id = place_order(stack)       # the demo price book was seeded for the checkout
        wait_until(lambda: stack.emails(order_id), timeout=30, what="the confirmation email")
    finally:
        server.stop()


def server_banner(root: Path) -> str:
    """What the stack started under ``root`` printed."""
    return (root / "dev.log").read_text(encoding="utf-8", errors="replace")
