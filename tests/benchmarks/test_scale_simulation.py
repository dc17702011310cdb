"""The scale simulation's arithmetic: document classes, 1 s windows, the real timeline, and a
rate that was not reached failing its target instead of being re-timed."""

from __future__ import annotations

from typing import Any

from benchmarks.scale_simulation import (SHARD_CLASS, document_class, document_figures, paced, scale_targets,
                                         sustained, window_peaks)


def test_document_classes_name_ids_by_their_collection() -> None:
    assert document_class("orders/ord_1") == "orders/{id}"
    assert document_class("analytics_daily/2026-01-02/shards/3") == SHARD_CLASS


def test_a_window_counts_the_writes_one_document_took_within_a_second() -> None:
    writes = [(0.0, "orders/a"), (0.4, "orders/a"), (0.9, "orders/a"), (1.95, "orders/a"), (0.5, "orders/b")]
    assert window_peaks(writes) == {"orders/{id}": (3, "orders/a")}
    assert window_peaks([(0.0, "orders/a"), (1.0, "orders/a")]) == {"orders/{id}": (1, "orders/a")}


def test_sustained_is_the_busiest_documents_writes_over_the_run() -> None:
    writes = [(t / 10, "analytics_daily/d/shards/0") for t in range(30)] + [(0.0, "analytics_daily/d/shards/1")]
    assert sustained(writes, 10.0) == {SHARD_CLASS: (3.0, "analytics_daily/d/shards/0", 2)}


def test_document_figures_use_the_writes_real_times() -> None:
    writes = [(100.0 + t / 2, f"analytics_daily/d/shards/{t % 2}", 1) for t in range(21)]   # 10 s
    fig = document_figures(writes)
    assert fig["span_s"] == 10.0 and fig["sustained"][SHARD_CLASS]["writes_per_s"] == 1.1
    assert fig["sustained"][SHARD_CLASS]["documents"] == 2 and fig["peaks"][SHARD_CLASS]["writes_in_1s"] == 1


def test_the_pacer_runs_every_unit_and_reports_what_it_achieved() -> None:
    done: list[int] = []
    pace = paced(done.append, 20, 400.0, 4)
    assert sorted(done) == list(range(20)) and pace["count"] == 20
    assert 0 < pace["achieved_per_s"] <= 400 * 1.05 and pace["requested_per_s"] == 400.0


def phase(achieved: float, shard_rate: float = 0.7, other_rate: float = 0.3) -> dict[str, Any]:
    """A phase's figures as ``run`` returns them."""
    return {"achieved_per_s": achieved, "requested_per_s": 50.0, "writes_per_s": 300.0,
            "sustained": {SHARD_CLASS: {"writes_per_s": shard_rate}, "orders/{id}": {"writes_per_s": other_rate}}}


def test_a_rate_not_reached_fails_its_target() -> None:
    targets = scale_targets({"analytics": phase(49.0), "orders": phase(14.6), "shards": 100}, 50.0)
    assert [t["met"] for t in targets] == [True, True, False, True]
    assert "100 shards" in targets[1]["target"] and "14.6 orders/s" in targets[3]["target"]


def test_the_hottest_shard_is_judged_at_the_catalogs_shard_count() -> None:
    targets = scale_targets({"analytics": phase(50.0, shard_rate=6.6), "orders": phase(50.0), "shards": 8}, 50.0)
    assert not targets[1]["met"] and targets[1]["value"] == 6.6
