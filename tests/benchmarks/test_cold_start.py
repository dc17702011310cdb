"""cold_start's plumbing: ratios taken per round, the process group read from /proc, and one
real start of the bare function answered and measured (no timings checked)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks.cold_start import cold_targets, figures, group_pids, peak_rss_mb, start_bare


def start(seconds: float, rss: float) -> dict[str, float]:
    """One start's figures."""
    return {"seconds": seconds, "peak_rss_mb": rss, "cpu_seconds": seconds}


def test_ratios_are_the_median_of_same_round_ratios() -> None:
    rounds = [{"ours": start(0.6, 60), "bare": start(0.2, 30)},      # 3.0, 2.0
              {"ours": start(0.3, 45), "bare": start(0.3, 30)},      # 1.0, 1.5
              {"ours": start(0.4, 40), "bare": start(0.4, 40)}]      # 1.0, 1.0
    fig = figures(rounds)
    assert fig["ratio"]["seconds"] == 1.0 and fig["ratio"]["peak_rss_mb"] == 1.5
    assert fig["median"]["bare"]["seconds"] == 0.3
    assert [t["met"] for t in cold_targets(fig)] == [True, True]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads processes from /proc")
def test_the_process_group_and_its_peak_rss_are_read_from_proc() -> None:
    assert os.getpid() in group_pids(os.getpgrp())
    assert peak_rss_mb(os.getpid()) > 1 and peak_rss_mb(2**22 + 1) == 0.0


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads processes from /proc")
def test_one_cold_start_of_the_bare_function_is_answered_and_measured(tmp_path: Path) -> None:
    result = start_bare(tmp_path, 0)
    assert result["seconds"] > 0 and result["peak_rss_mb"] > 10 and result["processes"] >= 1
