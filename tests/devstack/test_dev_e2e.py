"""The whole local stack, end to end, as a newcomer and an operator use it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import requests

from ordertasks.handlers.backends.sqlite import SqliteStore
from ordertasks.handlers.kind import SystemClock
from ordertasks.infra.config import REPO_ROOT, load_catalog
from tests.devstack.conftest import (
    DevStack,
    dev_argv,
    fast_catalog,
    place_order,
    start_dev,
)
from tests.support.servers import free_port, need_binary, port_open, wait_until

IMMEDIATE = ("send_confirmation_email", "record_analytics", "generate_invoice", "notify_warehouse")


def settled(stack: DevStack, order_id: str, kinds: tuple[str, ...] = IMMEDIATE, state: str = "done") -> bool:
    states = stack.task_states(order_id)
    return all(states.get(k) == state for k in kinds)


def test_an_order_has_each_side_effect_exactly_once(dev: DevStack) -> None:
    order_id = place_order(dev)
    wait_until(lambda: settled(dev, order_id), timeout=30, what="the four immediate effects")
    store = SqliteStore(dev.data_dir / "ordertasks.db")
    fact = store.analytics.get_fact(order_id)
    assert fact is not None and fact.revenue_minor == 5079          # 39.00 + 20 % VAT + 3.99 shipping
    assert store.analytics.daily_aggregate(fact.day).orders >= 1
    assert len(dev.emails(order_id)) == 1
    assert (dev.data_dir / "blobs" / "invoices" / f"{order_id}.pdf").exists()
    assert len(dev.notifications(order_id)) == 1
    assert [t["duplicates"] for t in dev.order(order_id)["tasks"]] == [0] * len(load_catalog(dev.config).kinds)


def test_gcloud_tasks_list_shows_the_queued_long_delay_tasks(dev: DevStack, tmp_path) -> None:  # type: ignore[no-untyped-def]
    gcloud = need_binary("gcloud", "operators watch queues with gcloud tasks list")
    order_id = place_order(dev)
    env = {**os.environ, "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"), "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
           "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDTASKS": f"http://127.0.0.1:{dev.ports['emulator']}/",
           "CLOUDSDK_AUTH_DISABLE_CREDENTIALS": "true"}
    out = subprocess.run([gcloud, "tasks", "list", "--queue=ordertasks-email", "--location=europe-west1",
                          "--project=my-shop-project", "--format=table(name.basename(), scheduleTime)"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["TASK_NAME", "SCHEDULE_TIME"]
    names = {line.split()[0] for line in lines[1:]}
    assert {n.split("-", 1)[1] for n in names if order_id in n} == {
        f"{order_id}-send_followup_email", f"{order_id}-request_review"}


def rejected_order(stack: DevStack) -> tuple[str, str]:
    """An order whose warehouse notification was rejected: (order id, failed-task id)."""
    stack.warehouse_mode("reject")
    order_id = place_order(stack)
    wait_until(lambda: stack.task_states(order_id).get("notify_warehouse") == "failed", timeout=30,
               what="the failed record")
    return order_id, f"{order_id}:notify_warehouse"


def test_rejected_notification_is_triaged_and_replayed_once(dev: DevStack) -> None:
    order_id, failed_id = rejected_order(dev)
    listing = dev.cli("failed", "list", "--status", "open", "--kind", "notify_warehouse")
    assert listing.returncode == 0
    header = listing.stdout.splitlines()[0].split()
    assert header == ["ID", "KIND", "ORDER", "ATTEMPTS", "STATUS", "LAST", "ERROR", "AGE"]
    assert failed_id in listing.stdout and "Rejected" in listing.stdout
    dev.warehouse_mode("ok")
    replay = dev.cli("failed", "replay", failed_id)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert f"{failed_id}: created" in replay.stdout and "-r1" in replay.stdout
    wait_until(lambda: dev.task_states(order_id)["notify_warehouse"] == "done", timeout=30, what="replay done")
    assert len(dev.notifications(order_id)) == 1
    shown = dev.cli("failed", "show", failed_id).stdout
    assert "status" in shown and "resolved" in shown and "history (1 failures)" in shown


def test_console_style_replay_request_is_swept(dev: DevStack) -> None:
    order_id, failed_id = rejected_order(dev)
    dev.warehouse_mode("ok")
    # What an operator does in the Firestore console: edit the status field by hand.
    store = SqliteStore(dev.data_dir / "ordertasks.db")
    assert store.failed.update_failed(failed_id, "replay_requested", SystemClock().now()) is not None
    swept = dev.cli("sweep")
    assert swept.returncode == 0, swept.stderr
    assert f"{failed_id}: created" in swept.stdout
    wait_until(lambda: dev.task_states(order_id)["notify_warehouse"] == "done", timeout=30, what="swept replay")
    assert len(dev.notifications(order_id)) == 1
    assert dev.cli("sweep").stdout.strip().endswith("swept 0 replay request(s)")


def test_flaky_warehouse_gets_every_notification_once(dev: DevStack) -> None:
    dev.warehouse_mode("flaky")
    orders = [place_order(dev) for _ in range(4)]
    for order_id in orders:
        wait_until(lambda o=order_id: settled(dev, o), timeout=60, what=f"{order_id} effects")
    dev.warehouse_mode("ok")
    assert [len(dev.notifications(o)) for o in orders] == [1, 1, 1, 1]


def test_cli_speaks_plainly(dev: DevStack) -> None:
    unknown = dev.cli("failed", "show", "no-such-order:notify_warehouse")
    assert unknown.returncode == 1
    assert "no failed task with id 'no-such-order:notify_warehouse'" in unknown.stderr
    stats = dev.cli("stats")
    assert stats.returncode == 0, stats.stderr
    assert stats.stdout.splitlines()[0].split() == ["QUEUE", "DUE", "NOW", "RETRYING", "SCHEDULED", "LATER", "OLDEST", "DUE"]
    assert "KIND" in stats.stdout and "ordertasks-warehouse" in stats.stdout
    assert "unavailable" not in stats.stdout


def test_busy_port_is_named(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ports = {name: free_port() for name in ("emulator", "handler", "checkout", "smtp", "warehouse", "console")}
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", ports["handler"]))
        blocker.listen()
        out = subprocess.run(dev_argv(tmp_path / "var", REPO_ROOT / "infra" / "tasks.toml", ports),
                             capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert f"port {ports['handler']} (handler) is already in use" in out.stderr


def test_sigterm_stops_every_child_and_a_restart_keeps_state(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data_dir, config = tmp_path / "var", fast_catalog(tmp_path)
    data_dir.mkdir()
    ports = {name: free_port() for name in ("emulator", "handler", "checkout", "smtp", "warehouse", "console")}
    first = start_dev(data_dir, config, ports)
    stack = DevStack(data_dir, config, ports, first)
    order_id = place_order(stack)
    wait_until(lambda: settled(stack, order_id), timeout=30, what="effects before restart")
    assert first.proc is not None
    os.kill(first.proc.pid, signal.SIGTERM)
    assert first.proc.wait(30) == 0
    wait_until(lambda: not any(port_open(p) for p in ports.values()), timeout=15, what="every port closed")
    second = start_dev(data_dir, config, ports)
    try:
        assert settled(stack, order_id)
        assert requests.get(f"{stack.checkout}/healthz", timeout=5).ok
    finally:
        second.stop()


def bare_shell(stack: DevStack) -> dict[str, str]:
    """An operator's shell that names only the catalog: no handler URL, no emulator, no data dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERTASKS_") and k != "CLOUD_TASKS_EMULATOR_HOST"}
    return env | {"ORDERTASKS_CONFIG": str(stack.config)}


def flags(stack: DevStack) -> list[str]:
    return ["--emulator-host", f"127.0.0.1:{stack.ports['emulator']}", "--data-dir", str(stack.data_dir)]


def test_replay_from_a_bare_shell_goes_to_the_stacks_handler(dev: DevStack) -> None:
    order_id, failed_id = rejected_order(dev)
    dev.warehouse_mode("ok")
    replay = subprocess.run([sys.executable, "-m", "cli", "failed", "replay", failed_id, *flags(dev)],
                            env=bare_shell(dev), cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    wait_until(lambda: dev.task_states(order_id)["notify_warehouse"] == "done", timeout=30, what="the replay")
    assert len(dev.notifications(order_id)) == 1


def test_stats_on_non_default_ports_with_flags(dev: DevStack) -> None:
    stats = subprocess.run([sys.executable, "-m", "cli", "stats", *flags(dev)], env=bare_shell(dev), cwd=REPO_ROOT,
                           capture_output=True, text=True, timeout=120)
    assert stats.returncode == 0, stats.stderr
    assert "unavailable" not in stats.stdout
    rows = {line.split()[0]: line.split()[1:] for line in stats.stdout.split("\n\n")[0].splitlines()[1:]}
    assert set(rows) == set(load_catalog(dev.config).queues)
