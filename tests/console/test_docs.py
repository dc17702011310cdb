"""What docs/operations.md and docs/console.md tell operators matches the code."""

from __future__ import annotations

import re

from ordertasks.handlers.backends.firestore import COMPOSITE_INDEXES
from ordertasks.infra.config import REPO_ROOT
from ordertasks.infra.console.serve import parse

OPERATIONS = (REPO_ROOT / "docs" / "operations.md").read_text()
CONSOLE = (REPO_ROOT / "docs" / "console.md").read_text()


def test_the_index_commands_are_exactly_the_indexes_the_code_needs() -> None:
    commands = [line for line in OPERATIONS.splitlines() if line.startswith("gcloud firestore indexes composite create")]
    expected = [f"gcloud firestore indexes composite create --project=$P --collection-group={i.collection_group} "
                + " ".join(f"--field-config={c}" for c in i.field_configs()) for i in COMPOSITE_INDEXES]
    assert commands == expected


def test_every_screenshot_the_console_page_shows_exists() -> None:
    images = re.findall(r"\]\((console/[^)]+\.png)\)", CONSOLE)
    assert len(images) >= 10
    assert all((REPO_ROOT / "docs" / image).is_file() for image in images)


def test_the_documented_defaults_are_the_real_ones() -> None:
    args = parse([])
    assert (args.host, args.port) == ("127.0.0.1", 8088)
    assert "http://127.0.0.1:8088/" in CONSOLE
