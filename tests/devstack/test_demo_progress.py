"""``ordertasks demo`` progress when stdout is not a terminal: one line per 10 % or per 10 s."""

from __future__ import annotations

import io
from collections import Counter

from ordertasks.infra.demo import Progress


class Clock:
    """A clock the test advances."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def counts(done: int, total: int) -> Counter[tuple[str, str]]:
    return Counter({("k", "done"): done, ("k", "scheduled"): total - done})


def test_one_line_per_ten_percent_not_per_poll() -> None:
    out, clock = io.StringIO(), Clock()
    progress = Progress(out, clock)
    for done in range(0, 101):          # 101 polls, 1 % apart, no time passing
        progress.show(counts(done, 100), final=done == 100)
    lines = out.getvalue().splitlines()
    assert len(lines) == 11, lines      # 0 %, 10 %, …, 100 %
    assert lines[-1].startswith("[" + "#" * 30 + "] 100/100 settled")


def test_a_line_every_ten_seconds_while_nothing_moves() -> None:
    out, clock = io.StringIO(), Clock()
    progress = Progress(out, clock)
    for _ in range(60):                 # one poll a second for a minute, stuck at 0 %
        progress.show(counts(0, 100))
        clock.now += 1.0
    assert len(out.getvalue().splitlines()) == 6


def test_a_terminal_redraws_one_line_in_place() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True
    out = Tty()
    progress = Progress(out, Clock())
    for done in range(0, 5):
        progress.show(counts(done, 4))
    assert "\n" not in out.getvalue() and out.getvalue().count("\r") == 5
