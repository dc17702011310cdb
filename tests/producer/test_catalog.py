"""The task catalog rejects bad configs with a message naming the file, line and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from ordertasks.infra.config import CatalogError, load_catalog
from tests.producer.conftest import CATALOG

QUEUE = """\
[queues.ordertasks-email]
max_dispatches_per_second = 25
max_attempts = 5
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tasks.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def test_the_shipped_catalog_has_the_built_in_kinds() -> None:
    catalog = load_catalog(CATALOG)
    assert {k: v.delay_seconds for k, v in catalog.kinds.items()} == {
        "send_confirmation_email": 0, "record_analytics": 5, "generate_invoice": 30, "notify_warehouse": 60,
        "send_followup_email": 86400, "request_review": 604800}
    assert all(k.queue in catalog.queues for k in catalog.kinds.values())


def test_delay_over_30_days_names_its_line(tmp_path: Path) -> None:
    text = QUEUE + '\n[kinds.request_review]\nqueue = "ordertasks-email"\ndelay_seconds = 2592001\n'
    path = _write(tmp_path, text)
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    message = str(err.value)
    assert message.startswith(f"{path}:{_line_of(text, 'delay_seconds')}:")
    assert "[kinds.request_review]" in message and "30-day limit" in message


def test_unknown_queue_names_its_line_and_the_known_queues(tmp_path: Path) -> None:
    text = QUEUE + '\n[kinds.record_analytics]\nqueue = "ordertasks-analytix"\ndelay_seconds = 5\n'
    path = _write(tmp_path, text)
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    message = str(err.value)
    assert message.startswith(f"{path}:{_line_of(text, 'analytix')}:")
    assert "unknown queue 'ordertasks-analytix'" in message
    assert "define [queues.ordertasks-analytix]" in message and "ordertasks-email" in message


def test_negative_delay_is_rejected(tmp_path: Path) -> None:
    text = QUEUE + '\n[kinds.x]\nqueue = "ordertasks-email"\ndelay_seconds = -1\n'
    with pytest.raises(CatalogError, match="delay_seconds"):
        load_catalog(_write(tmp_path, text))


def test_dispatch_deadline_out_of_range_names_its_line(tmp_path: Path) -> None:
    text = QUEUE + '\n[kinds.x]\nqueue = "ordertasks-email"\ndelay_seconds = 0\ndispatch_deadline_seconds = 5\n'
    path = _write(tmp_path, text)
    with pytest.raises(CatalogError, match=rf":{_line_of(text, 'dispatch_deadline')}: .*between 15 and 1800"):
        load_catalog(path)


def test_queue_rate_over_500_names_the_queue(tmp_path: Path) -> None:
    text = "[queues.fast]\nmax_dispatches_per_second = 501\n"
    with pytest.raises(CatalogError, match=r":1: \[queues.fast\] max_dispatches_per_second must be between 0 and 500"):
        load_catalog(_write(tmp_path, text))


def test_unknown_queue_setting_is_named(tmp_path: Path) -> None:
    text = "[queues.slow]\nmax_attempt = 3\n"
    with pytest.raises(CatalogError, match=r"\[queues.slow\] unknown or malformed setting 'max_attempt'"):
        load_catalog(_write(tmp_path, text))


def test_min_backoff_over_max_is_rejected(tmp_path: Path) -> None:
    text = "[queues.q]\nmin_backoff_seconds = 400\nmax_backoff_seconds = 300\n"
    with pytest.raises(CatalogError, match="min_backoff_seconds must be >= 0 and <= max_backoff_seconds"):
        load_catalog(_write(tmp_path, text))


def test_invalid_toml_says_so(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="not valid TOML"):
        load_catalog(_write(tmp_path, "[kinds.x\nqueue = 1\n"))
