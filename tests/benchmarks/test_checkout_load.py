"""checkout_load's arithmetic: the target is 50 orders/s at p99 <= 100 ms with 32 clients,
figures carry their sample counts and each part's CPU per order."""

from __future__ import annotations

from collections import Counter

from benchmarks._loadgen import LoadResult
from benchmarks.checkout_load import _figures, _medians, load_targets


def test_figures_count_samples_errors_and_cpu_per_created_order() -> None:
    result = LoadResult(latencies_ms=[10.0] * 99 + [200.0], elapsed=2.0, statuses=Counter({201: 98, 503: 2}))
    fig = _figures(result, {"checkout": 0.98, "emulator": 0.49})
    assert fig["samples"] == 100 and fig["created"] == 98 and fig["errors"] == 2
    assert fig["checkout_cpu_ms_per_order"] == 10.0 and fig["emulator_cpu_ms_per_order"] == 5.0


def run(rate: float, held: bool = True) -> dict[str, object]:
    """One repeat of one client count."""
    step = {"orders_per_s": rate, "p50_ms": 20.0, "p99_ms": 80.0, "samples": 750, "checkout_cpu_ms_per_order": 9.0,
            "emulator_cpu_ms_per_order": 6.0, "load_generator_cpu_ms_per_order": 0.6}
    return {"saturation": step, "sustained": step if held else None, "tried": [step]}


def test_a_repeat_with_no_rate_held_counts_as_zero_and_the_target_is_50_at_32_clients() -> None:
    repeats = [{"by_clients": {c: run(rate, held) for c in (8, 32, 128)}}
               for rate, held in ((60.0, True), (55.0, False), (40.0, True))]
    fig = {mode: {c: _medians(repeats, c) for c in (8, 32, 128)} for mode in ("concurrent", "sequential")}
    assert fig["concurrent"][32]["sustained_orders_per_s"] == 40.0      # median of 60, 0, 40
    targets = {t["target"]: t for t in load_targets(fig)}
    assert targets["orders/s at p99 <= 100 ms, 32 clients"]["limit"] == 50 and \
        not targets["orders/s at p99 <= 100 ms, 32 clients"]["met"]
    assert targets["orders/s at p99 <= 100 ms, 8 clients"]["met"]
