"""emulator_dispatch's sequential workload: the ratio to the peer is taken per repeat (the
three systems of one repeat ran in the same window), and without the peer ours stand alone."""

from __future__ import annotations

from typing import Any

from benchmarks.emulator_dispatch import sequential_report


def run(rate: float) -> dict[str, Any]:
    """One repeat's report from ``_sequential_create.py``."""
    return {"tasks_per_s": rate, "ms_per_create": 1000 / rate}


def test_ratio_is_the_median_of_same_repeat_ratios() -> None:
    report = sequential_report({"grpc": [run(600), run(300), run(900)], "rest": [run(400)] * 3,
                                "peer_grpc": [run(1200), run(300), run(900)]}, tasks=10)
    assert report["ratio_to_peer"]["grpc"] == 1.0  # 0.5, 1.0, 1.0: not 600 / 900
    by_name = {t["target"]: t for t in report["targets"]}
    assert by_name["sequential creates, ours / peer (grpc)"]["met"]
    assert by_name["sequential CreateTask (grpc)"]["value"] == round(1000 / 600, 3)


def test_without_the_peer_only_our_targets_are_reported() -> None:
    report = sequential_report({"grpc": [run(500)] * 3, "rest": [run(400)] * 3, "peer_grpc": []}, tasks=10)
    assert report["ratio_to_peer"] == {}
    assert [t["target"] for t in report["targets"]] == ["sequential CreateTask (grpc)", "sequential CreateTask (rest)"]
