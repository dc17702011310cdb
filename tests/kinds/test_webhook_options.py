"""``[kinds.NAME.webhook]`` options of the outbound client: ``max_answer_bytes`` and
``allow_private``, their defaults, and refusals naming the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from ordertasks.handlers.config import CatalogError, load_catalog
from ordertasks.handlers.registry import KindRegistry
from ordertasks.infra.config import DEFAULT_CATALOG

HEAD = '\n[queues.q-crm]\n\n[kinds.sync_crm]\nqueue = "q-crm"\ndelay_seconds = 0\n[kinds.sync_crm.webhook]\n'


def catalog(tmp_path: Path, options: str) -> Path:
    path = tmp_path / "tasks.toml"
    path.write_text(DEFAULT_CATALOG.read_text() + HEAD + 'url = "https://crm.example/"\n' + options)
    return path


def test_defaults_are_a_64_kib_cap_and_public_addresses_only(tmp_path: Path) -> None:
    webhook = load_catalog(catalog(tmp_path, "")).kinds["sync_crm"].webhook
    assert webhook is not None and (webhook.max_answer_bytes, webhook.allow_private) == (65536, False)
    warehouse = KindRegistry.from_catalog(load_catalog(DEFAULT_CATALOG)).webhooks["notify_warehouse"]
    assert (warehouse.max_answer_bytes, warehouse.allow_private) == (65536, False)


def test_options_are_read(tmp_path: Path) -> None:
    path = catalog(tmp_path, 'max_answer_bytes = 4096\nallow_private = ["10.8.0.0/16", "fd00::5"]\n')
    webhook = load_catalog(path).kinds["sync_crm"].webhook
    assert webhook is not None and webhook.max_answer_bytes == 4096
    assert webhook.allow_private == ("10.8.0.0/16", "fd00::5")
    assert load_catalog(catalog(tmp_path, "allow_private = true\n")).kinds["sync_crm"].webhook.allow_private is True  # type: ignore[union-attr]


@pytest.mark.parametrize("options, expected", [
    ("max_answer_bytes = 0\n", "max_answer_bytes = 0 must be a whole number from 1 to 16777216"),
    ("max_answer_bytes = \"64k\"\n", "max_answer_bytes = '64k' must be a whole number"),
    ("max_answer_bytes = true\n", "max_answer_bytes = True must be a whole number"),
    ("allow_private = \"yes\"\n", "allow_private must be true, false or a list of networks"),
    ("allow_private = [\"intranet\"]\n", "allow_private: 'intranet' is not a network or an address"),
    ("follow_redirects = true\n", "unknown webhook setting 'follow_redirects'"),
])
def test_bad_options_are_refused_naming_the_file_and_line(tmp_path: Path, options: str, expected: str) -> None:
    path = catalog(tmp_path, options)
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    message = str(caught.value)
    assert expected in message and message.startswith(f"{path}:"), message
