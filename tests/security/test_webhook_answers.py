"""Issue 28, F6: the handler read a webhook's answer with no size limit (a 128 MiB answer took a
worker from 66 to 287 MiB) and an answer dripped at 1 byte/s ran 39 s past a 5 s timeout.

Each test runs the real handler (``tests/functions`` stack) against the warehouse stand-in in
``huge`` or ``drip`` mode.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ordertasks.handlers.backends.http import DEFAULT_MAX_ANSWER_BYTES
from tests.functions.conftest import HandlerStack

KIND = "notify_warehouse"
MiB = 1024 * 1024


def _peak_rss_reset() -> bool:
    """Reset this process's peak RSS (VmHWM) so a later read shows the peak of what follows."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc (Linux)")
def test_a_128_mib_answer_is_read_up_to_the_cap_and_memory_stays_flat(stack: HandlerStack) -> None:
    """Attack: a 128 MiB answer took a worker from 66 to 287 MiB (the handler read it whole)."""
    stack.warehouse.state.mode = "huge"
    peak = "VmHWM" if _peak_rss_reset() else "VmRSS"
    before = _rss_kib(peak)
    started = time.monotonic()
    answer = stack.deliver(stack.task(KIND, "ord_huge"))
    assert answer.json()["outcome"] == "done"          # a 2xx is done; only its answer is cut short
    assert time.monotonic() - started < 5
    # What the far end got onto the wire before the handler hung up: the cap plus socket buffers.
    assert stack.warehouse.state.sent_bytes < 16 * MiB
    assert (_rss_kib(peak) - before) < 32 * 1024, "the handler's memory grew with the answer"
    effect = stack.store.effects.get_effect("ord_huge", KIND)
    assert effect is not None and effect.result.get("answer_truncated") is True
    assert DEFAULT_MAX_ANSWER_BYTES == 64 * 1024


def test_an_answer_dripped_a_byte_a_second_ends_at_the_deadline_as_a_retry(stack: HandlerStack) -> None:
    """Attack: an answer dripped at 1 byte/s ran 39 s past a 5 s timeout (the timeout was per read)."""
    stack.warehouse.state.mode, stack.warehouse.state.drip_seconds = "drip", 1.0
    started = time.monotonic()
    answer = stack.deliver(stack.task(KIND, "ord_drip"))     # the stack's warehouse timeout is 2 s
    elapsed = time.monotonic() - started
    assert (answer.status_code, answer.json()["outcome"]) == (503, "retry")
    assert "did not answer within 2" in answer.json()["message"]
    assert elapsed < 3.0, f"the call ran {elapsed:.1f}s past its 2 s deadline"
