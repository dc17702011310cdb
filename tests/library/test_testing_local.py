"""``ordertasks.testing``: a shop's kind and the built-in ones, run through the real dispatcher
on a manual clock (retries with the queue's backoff, the failed-task log, cancel).

The shop's kind lives in this module (the catalog names it ``tests.library.test_testing_local:
award_points``, imported as the handler imports it); ``LOYALTY`` is its far end.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ordertasks import EffectContext, PermanentError, RetryableError, Task, Throttled, kind
from ordertasks.handlers.config import QueueConfig
from ordertasks.testing import Delivered, LocalOrderTasks, local_order_tasks
from tests.effects.orders import eur_order

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
KIND = "award_loyalty_points"
CATALOG = f"""
extends = "builtin"
drop = ["kinds.record_analytics", "kinds.generate_invoice", "kinds.notify_warehouse",
        "kinds.send_followup_email", "kinds.request_review"]

[queues.shop-loyalty]
max_attempts = 4
min_backoff_seconds = 10
max_backoff_seconds = 300
max_doublings = 4
max_retry_duration_seconds = 0

[kinds.{KIND}]
queue = "shop-loyalty"
delay_seconds = 10
dispatch_deadline_seconds = 60
effect = "{__name__}:award_points"
"""


class LoyaltyApi:
    """The shop's loyalty service: fails as ``script`` says (one entry per call), then awards."""

    def __init__(self) -> None:
        self.script: list[Exception] = []
        self.awarded: list[tuple[str, int]] = []
        self.calls = 0


LOYALTY = LoyaltyApi()


@kind()
def award_points(task: Task, ctx: EffectContext) -> dict[str, Any]:
    """The shop's code kind: a point per whole euro, at most once per order."""
    LOYALTY.calls += 1
    if LOYALTY.script:
        raise LOYALTY.script.pop(0)
    points = int(task.data.totals.total)
    LOYALTY.awarded.append((task.effect_key, points))
    return {"points": points}


@pytest.fixture(autouse=True)
def loyalty() -> LoyaltyApi:
    """A fresh loyalty service for each test."""
    global LOYALTY
    LOYALTY = LoyaltyApi()
    return LOYALTY


@pytest.fixture
def shop_catalog(tmp_path: Path) -> Path:
    """The shop's catalog: the shipped one with its email, plus the loyalty kind and queue."""
    path = tmp_path / "tasks.toml"
    path.write_text(CATALOG, encoding="utf-8")
    return path


@pytest.fixture
def tasks(shop_catalog: Path) -> Iterator[LocalOrderTasks]:
    """The shop's catalog in process, the clock standing at ``T0``."""
    with local_order_tasks(shop_catalog, start=T0) as local:
        yield local


def order(order_id: str, **changes: Any) -> dict[str, Any]:
    """A paid order placed at ``T0`` (total 1383.92 EUR)."""
    return {"order_id": order_id, **eur_order().model_dump(mode="json"), "placed_at": T0.isoformat(), **changes}


def of(kind_name: str, delivered: list[Delivered]) -> list[tuple[int, str]]:
    """``(attempt, outcome)`` of the deliveries of one kind."""
    return [(d.attempt, d.outcome) for d in delivered if d.kind == kind_name]


def test_nothing_runs_before_its_delay(tasks: LocalOrderTasks, loyalty: LoyaltyApi) -> None:
    tasks.schedule(order("ord_t_delay"))
    assert of("send_confirmation_email", tasks.run_due()) == [(1, "done")]
    tasks.advance(9.999)
    assert tasks.run_due() == [] and loyalty.calls == 0
    tasks.advance(timedelta(milliseconds=1))
    assert of(KIND, tasks.run_due()) == [(1, "done")]
    assert loyalty.awarded == [("ord_t_delay:award_loyalty_points", 1383)]


def test_two_retryable_errors_then_done_with_the_queues_backoff(tasks: LocalOrderTasks, loyalty: LoyaltyApi) -> None:
    loyalty.script = [RetryableError("loyalty API 503"), RetryableError("loyalty API 503")]
    tasks.schedule(order("ord_t_retry"))
    tasks.advance(10)
    [first] = [d for d in tasks.run_due() if d.kind == KIND]
    assert (first.attempt, first.outcome, first.error, first.error_type) == (1, "retry", "loyalty API 503",
                                                                             "RetryableError")
    assert first.retry_at == T0 + timedelta(seconds=20)             # min_backoff 10 s
    tasks.advance(10)
    [second] = tasks.run_due()
    assert (second.attempt, second.outcome, second.retry_at) == (2, "retry", T0 + timedelta(seconds=40))  # doubled
    tasks.advance(19)
    assert tasks.run_due() == []
    tasks.advance(1)
    assert of(KIND, tasks.run_due()) == [(3, "done")]
    assert loyalty.awarded == [("ord_t_retry:award_loyalty_points", 1383)] and loyalty.calls == 3
    assert {t["kind"]: t["state"] for t in tasks.status("ord_t_retry")["tasks"]}[KIND] == "done"
    assert tasks.failed_tasks() == [] and len(tasks.queue) == 0


def test_backoff_is_the_catalog_queues_formula() -> None:
    queue = QueueConfig(name="q", min_backoff_seconds=10, max_backoff_seconds=300, max_doublings=4)
    assert [queue.backoff_seconds(k) for k in range(8)] == [10, 20, 40, 80, 160, 300, 300, 300]


def test_a_permanent_error_is_a_failed_task_at_once(tasks: LocalOrderTasks, loyalty: LoyaltyApi) -> None:
    loyalty.script = [PermanentError("customer unknown to the loyalty service")]
    tasks.schedule(order("ord_t_dead"))
    tasks.advance(10)
    [dead] = [d for d in tasks.run_due() if d.kind == KIND]
    assert (dead.outcome, dead.error_type, dead.retry_at) == ("dead", "PermanentError", None)
    [failed] = tasks.failed_tasks("ord_t_dead")
    assert (failed.kind, failed.status, failed.error_type, failed.attempts) == (KIND, "open", "PermanentError", 1)
    assert "loyalty service" in failed.error and failed.queue == "shop-loyalty"
    assert {t["kind"]: t["state"] for t in tasks.status("ord_t_dead")["tasks"]}[KIND] == "failed"
    assert tasks.run_all() == [] and loyalty.calls == 1


def test_retries_end_in_the_failed_log_on_the_queues_last_attempt(tasks: LocalOrderTasks,
                                                                  loyalty: LoyaltyApi) -> None:
    loyalty.script = [RetryableError(f"down {n}") for n in range(10)]
    tasks.schedule(order("ord_t_exhaust"))
    delivered = tasks.run_all()
    assert of(KIND, delivered) == [(1, "retry"), (2, "retry"), (3, "retry"), (4, "dead")]   # max_attempts 4
    [failed] = tasks.failed_tasks()
    assert (failed.attempts, failed.error_type, failed.error) == (4, "RetryableError", "down 3")
    assert tasks.clock.now() == T0 + timedelta(seconds=10 + 10 + 20 + 40)
    assert loyalty.awarded == [] and len(tasks.queue) == 0


def test_a_retry_after_longer_than_the_backoff_is_honoured(tasks: LocalOrderTasks, loyalty: LoyaltyApi) -> None:
    loyalty.script = [Throttled("loyalty API 429", retry_after=90)]
    tasks.schedule(order("ord_t_throttled"))
    tasks.advance(10)
    [throttled] = [d for d in tasks.run_due() if d.kind == KIND]
    assert throttled.retry_at == T0 + timedelta(seconds=100)


def test_cancel_before_due_means_the_effect_never_runs(tasks: LocalOrderTasks, loyalty: LoyaltyApi) -> None:
    tasks.schedule(order("ord_t_cancel"))
    assert of("send_confirmation_email", tasks.run_due()) == [(1, "done")]
    cancelled = {r.kind: r.state for r in tasks.cancel("ord_t_cancel")}
    assert cancelled == {"send_confirmation_email": "done", KIND: "cancelled"}
    assert tasks.run_all() == [] and loyalty.calls == 0
    assert {t["kind"]: t["state"] for t in tasks.status("ord_t_cancel")["tasks"]} == {
        "send_confirmation_email": "done", KIND: "cancelled"}


def test_a_delivery_after_the_cancel_does_nothing(tasks: LocalOrderTasks, loyalty: LoyaltyApi) -> None:
    """Cloud Tasks may deliver a task whose delete came too late: the dispatcher's cancel record holds."""
    [result] = [r for r in tasks.schedule(order("ord_t_late")) if r.kind == KIND]
    held = tasks.queue.get_task(name=result.name)
    tasks.cancel("ord_t_late", kinds=[KIND])
    tasks.queue.create_task(parent=result.name.rsplit("/tasks/", 1)[0], task={**_plain(held), "name": ""})
    tasks.advance(10)
    assert of(KIND, tasks.run_due()) == [(1, "cancelled")] and loyalty.calls == 0


def _plain(task: Any) -> dict[str, Any]:
    return {"http_request": {"url": task.http_request.url, "body": task.http_request.body}}


def test_scheduling_again_changes_nothing(tasks: LocalOrderTasks, loyalty: LoyaltyApi) -> None:
    tasks.schedule(order("ord_t_twice"))
    assert {r.state for r in tasks.schedule(order("ord_t_twice"))} == {"exists"}
    assert of(KIND, tasks.run_all()) == [(1, "done")] and len(tasks.sent_emails) == 1


def test_the_shipped_catalog_runs_every_builtin_kind_in_memory() -> None:
    with local_order_tasks(Path(__file__).resolve().parents[2] / "infra" / "tasks.toml", start=T0) as local:
        local.schedule(order("ord_t_builtin"))
        delivered = local.run_all()
        assert {d.outcome for d in delivered} == {"done"} and len(delivered) == len(local.kinds)
        assert [m["Subject"] is not None for m in local.sent_emails] == [True, True, True]
        assert local.blobs.paths() == ["invoices/ord_t_builtin.pdf"]
        assert (local.blobs.get("invoices/ord_t_builtin.pdf") or b"").startswith(b"%PDF")
        [call] = local.webhook_calls
        assert (call.kind, call.idempotency_key) == ("notify_warehouse", "ord_t_builtin:notify_warehouse")
        assert local.stores.analytics.get_fact("ord_t_builtin") is not None
        assert {t["state"] for t in local.status("ord_t_builtin")["tasks"]} == {"done"}
        assert local.clock.now() == T0 + timedelta(days=7)      # the review request, a week later


def test_a_webhook_that_refuses_is_a_failed_task() -> None:
    def refuse(call: Any) -> dict[str, Any]:
        raise PermanentError("warehouse refused the request with 422")

    with local_order_tasks(start=T0) as local:
        local.webhooks["notify_warehouse"].answer = refuse
        local.schedule(order("ord_t_refused"))
        assert ("notify_warehouse", 1, "dead") in [(d.kind, d.attempt, d.outcome) for d in local.run_all()]
        assert [f.kind for f in local.failed_tasks()] == ["notify_warehouse"]


def test_the_clock_follows_the_wall_clock_without_a_start(shop_catalog: Path, loyalty: LoyaltyApi) -> None:
    """A checkout that stamps ``placed_at`` with its own ``datetime.now()`` is due when its delay says."""
    with local_order_tasks(shop_catalog) as local:
        local.schedule(order("ord_t_wall", placed_at=datetime.now(UTC).isoformat()))
        assert of(KIND, local.run_due()) == []
        local.advance(10)
        assert of(KIND, local.run_due()) == [(1, "done")]


def test_time_never_moves_back(tasks: LocalOrderTasks) -> None:
    with pytest.raises(ValueError, match="forward"):
        tasks.advance(-1)


@pytest.fixture
def ordertasks_catalog(shop_catalog: Path) -> Path:
    """The plugin's hook: ``ordertasks_local`` uses this catalog."""
    return shop_catalog


def test_the_plugins_fixture_is_the_shops_catalog_in_process(ordertasks_local: LocalOrderTasks,
                                                             loyalty: LoyaltyApi) -> None:
    assert isinstance(ordertasks_local, LocalOrderTasks) and KIND in ordertasks_local.kinds
    ordertasks_local.schedule(order("ord_t_fixture", placed_at=ordertasks_local.clock.now().isoformat()))
    ordertasks_local.advance(10)
    assert of(KIND, ordertasks_local.run_due()) == [(1, "done")] and len(loyalty.awarded) == 1


def test_the_catalog_comes_from_ordertasks_config_by_default(shop_catalog: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERTASKS_CONFIG", str(shop_catalog))
    with local_order_tasks() as local:
        assert local.catalog.source == str(shop_catalog) and KIND in local.kinds


def test_a_kind_that_does_not_import_is_refused_as_the_handler_would(tmp_path: Path) -> None:
    from ordertasks.handlers.config import CatalogError

    broken = tmp_path / "broken.toml"
    broken.write_text(CATALOG.replace(f"{__name__}:award_points", "no_such_shop_module:award_points"), encoding="utf-8")
    with pytest.raises(CatalogError, match="no_such_shop_module"):
        local_order_tasks(broken)


def test_an_operators_replay_runs_through_the_sweep(tasks: LocalOrderTasks, loyalty: LoyaltyApi) -> None:
    loyalty.script = [PermanentError("loyalty service refused: account locked")]
    tasks.schedule(order("ord_t_replay"))
    tasks.advance(10)
    assert of(KIND, tasks.run_due()) == [(1, "dead")]
    [failed] = tasks.failed_tasks()
    tasks.stores.failed.update_failed(failed.id, "replay_requested", tasks.clock.now(), expect_status="open")
    tasks.sweep()
    [replayed] = tasks.run_due()
    assert (replayed.kind, replayed.outcome, replayed.task_name.endswith("-r1")) == (KIND, "done", True)
    assert [f.status for f in tasks.failed_tasks()] == ["resolved"] and len(loyalty.awarded) == 1
