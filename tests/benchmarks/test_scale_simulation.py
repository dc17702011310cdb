"""The scale simulation's arithmetic: document classes, 1 s windows, the scheduled timeline."""

from __future__ import annotations

from benchmarks.scale_simulation import document_class, resharded, retimed, sustained, window_peaks
from ordertasks.handlers.kinds.record_analytics import shard_for


def test_document_classes_name_ids_by_their_collection() -> None:
    assert document_class("orders/ord_1") == "orders/{id}"
    assert document_class("analytics_daily/2026-01-02/shards/3") == "analytics_daily/{day}/shards/{k}"


def test_a_window_counts_the_writes_one_document_took_within_a_second() -> None:
    writes = [(0.0, "orders/a"), (0.4, "orders/a"), (0.9, "orders/a"), (1.95, "orders/a"), (0.5, "orders/b")]
    assert window_peaks(writes) == {"orders/{id}": (3, "orders/a")}
    assert window_peaks([(0.0, "orders/a"), (1.0, "orders/a")]) == {"orders/{id}": (1, "orders/a")}


def test_sustained_is_the_busiest_documents_writes_over_the_run() -> None:
    writes = [(t / 10, "analytics_daily/d/shards/0") for t in range(30)] + [(0.0, "analytics_daily/d/shards/1")]
    assert sustained(writes, 10.0) == {"analytics_daily/{day}/shards/{k}": (3.0, "analytics_daily/d/shards/0", 2)}


def test_writes_move_to_their_orders_scheduled_start_keeping_their_offset() -> None:
    spans = [(1, 100.0, 100.5, 0.0, "o1"), (1, 100.5, 101.0, 0.02, "o2"), (2, 100.0, 100.3, 0.04, "o3")]
    writes = [(100.1, "orders/o1", 1), (100.6, "orders/o2", 1), (100.2, "orders/o3", 2), (99.0, "orders/warm", 1)]
    placed = retimed(writes, spans)
    assert [(round(at, 3), path, order) for at, path, order in placed] == [
        (0.1, "orders/o1", "o1"), (0.12, "orders/o2", "o2"), (0.24, "orders/o3", "o3")]


def test_shard_writes_are_rebucketed_by_the_order_id() -> None:
    timeline = [(0.0, "analytics_daily/d/shards/5", "ord_x"), (0.0, "orders/ord_x", "ord_x")]
    assert resharded(timeline, 64) == [(0.0, f"analytics_daily/d/shards/{shard_for('ord_x', 64)}")]
