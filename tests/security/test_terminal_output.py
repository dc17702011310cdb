"""Item 7: operator CLI output never emits terminal escape sequences from stored, untrusted text."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ordertasks.handlers.backends.sqlite import SqliteStore
from ordertasks.handlers.ports import FailureReport
from ordertasks.producer.stats import render
from ordertasks.producer.terminal import escape_controls, for_terminal

REPO = Path(__file__).resolve().parents[2]
CLEAR_SCREEN = "\x1b[2J\x1b[H"
TITLE = "\x1b]0;pwned\x07"
HOSTILE = f"warehouse said {CLEAR_SCREEN}all good{TITLE}\r\u202eevil\u2028line"


def cli(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[bytes]:
    """``ordertasks …`` as an operator runs it; output kept as raw bytes."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ORDERTASKS_", "CLOUD_TASKS_"))}
    clean.update({"ORDERTASKS_DATA_DIR": str(data_dir), **env})
    return subprocess.run([sys.executable, str(REPO / "cli.py"), *args], env=clean, capture_output=True, timeout=60)


def assert_no_raw_controls(output: bytes) -> None:
    text = output.decode()
    raw = [c for c in text if c != "\n" and (ord(c) < 0x20 or 0x7f <= ord(c) < 0xa0 or c in "\u202e\u2028")]
    assert raw == [], f"raw control characters reached the terminal: {raw!r}"


@pytest.fixture
def hostile_log(tmp_path: Path) -> Path:
    """A data dir whose failed-task log holds escape sequences in error, history and note."""
    store = SqliteStore(tmp_path / "ordertasks.db")
    for attempt in (1, 2):
        store.failed.record_failure(FailureReport("ord_esc", "notify_warehouse", "ordertasks-warehouse", "t-esc",
                                           {"kind": "notify_warehouse", "note": TITLE}, "Rejected", HOSTILE,
                                           attempt, datetime.now(UTC)))
    store.failed.update_failed("ord_esc:notify_warehouse", "open", datetime.now(UTC), note=f"see {CLEAR_SCREEN}")
    store.close()
    return tmp_path


def test_failed_show_escapes_error_history_and_note(hostile_log: Path) -> None:
    """Attack: a warehouse 4xx body with ESC sequences clears the operator's screen on `failed show`."""
    done = cli(hostile_log, "failed", "show", "ord_esc:notify_warehouse")
    assert done.returncode == 0, done.stderr
    assert_no_raw_controls(done.stdout)
    assert b"\\x1b[2J" in done.stdout and b"\\u202e" in done.stdout
    assert done.stdout.count(b"attempt ") == 2            # both history lines still shown


def test_failed_list_escapes_table_cells(hostile_log: Path) -> None:
    """Attack: the same text in the `failed list` table (and a forged line break in a cell)."""
    done = cli(hostile_log, "failed", "list")
    assert done.returncode == 0, done.stderr
    assert_no_raw_controls(done.stdout)
    assert len(done.stdout.decode().strip().splitlines()) == 2   # header + one row: no forged rows


def test_failed_resolve_escapes_the_note_it_echoes(hostile_log: Path) -> None:
    """Attack: an operator pasting a note with escapes gets them echoed raw."""
    done = cli(hostile_log, "failed", "resolve", "ord_esc:notify_warehouse", "--note", f"ok{TITLE}")
    assert done.returncode == 0, done.stderr
    assert_no_raw_controls(done.stdout)
    assert b"\\x1b]0;pwned\\x07" in done.stdout


class HostileCloudTasks(BaseHTTPRequestHandler):
    """A Cloud Tasks endpoint whose error message carries escape sequences."""

    def log_message(self, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:  # noqa: N802
        body = json.dumps({"error": {"code": 400, "message": f"bad {CLEAR_SCREEN}{TITLE}",
                                     "status": "INVALID_ARGUMENT"}}).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def hostile_tasks_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), HostileCloudTasks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_stats_escapes_errors_and_failures(hostile_log: Path, hostile_tasks_api: str) -> None:
    """Attack: a queue error message from the API, shown raw in the `stats` table."""
    # The hostile API is a REST fake: the client must speak REST to it.
    done = cli(hostile_log, "stats", CLOUD_TASKS_EMULATOR_HOST=hostile_tasks_api, ORDERTASKS_TASKS_TRANSPORT="rest")
    assert done.returncode == 0, done.stderr
    assert_no_raw_controls(done.stdout)
    assert b"unavailable" in done.stdout


def test_stats_tables_escape_every_cell() -> None:
    """Attack: an error short enough to survive truncation, rendered into the stats table."""
    now = datetime.now(UTC)
    text = render({"ordertasks-email": f"unavailable ({CLEAR_SCREEN})"}, [("k\x1b", "1", "0", "0", "0", "0", "0", "0", "0", "0", "-")],
                  now)
    assert "\x1b" not in text and "\\x1b[2J" in text and "k\\x1b" in text


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x08", "\x1b", "\x7f", "\x9b", "\r", "\t", "\u200b",
                                  "\u202e", "\u2066", "\u2028", "\u2029", "\ufeff"])
def test_every_control_and_format_character_is_escaped(char: str) -> None:
    """Attack: C0, C1 (0x9b is a one-byte CSI), DEL, bidi overrides, zero-width and line separators."""
    shown = escape_controls(f"a{char}b")
    assert char not in shown and shown.startswith("a\\") and shown.endswith("b")
    assert char not in for_terminal(f"x\na{char}b")


def test_ordinary_text_is_left_alone() -> None:
    """Attack: none; names in any script, and our own newlines between lines, print as they are."""
    assert escape_controls("Zoë Ωmega 日本 — 12 €") == "Zoë Ωmega 日本 — 12 €"
    assert for_terminal("one\ntwo") == "one\ntwo"
