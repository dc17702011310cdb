"""The collector's rules on small documents: markers, console steps, substitution, comparison."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.docs import blocks
from tests.docs.blocks import Block, blocks_of, console_steps
from tests.docs.terminal import DEFAULT_PORTS, Terminal, failure, json_mismatches, output_mismatches, shell_error_line, text_mismatch

DOC = """# A doc

<!-- not-run: needs a Google Cloud project -->
```sh
gcloud projects list
```

1. Indented:

   <!-- run: eventually, continues -->
   ```console
   $ curl -s -X POST localhost:8080/api/checkout \\
       -d '{"a":
            1}'
   {"order_id": "ord_abc", "total": "27.51"}
   $ ls var/mail/
   x.eml
   ```
"""


@pytest.fixture
def doc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Block]:
    monkeypatch.setattr(blocks, "REPO", tmp_path)
    path = tmp_path / "guide.md"
    path.write_text(DOC, encoding="utf-8")
    return blocks_of(path)


def test_markers_lines_and_indentation(doc: list[Block]) -> None:
    first, second = doc
    assert (first.where, first.lang, first.not_run) == ("guide.md:4", "sh", "needs a Google Cloud project")
    assert (second.where, second.lang, second.not_run, second.options) == ("guide.md:11", "console", None,
                                                                           {"eventually", "continues"})
    assert second.text.startswith("$ curl")


def test_console_steps_continue_until_the_command_is_complete(doc: list[Block]) -> None:
    steps = console_steps(doc[1])
    assert [s.line for s in steps] == [1, 5]
    assert steps[0].command.count("\n") == 2 and steps[0].expected == ['{"order_id": "ord_abc", "total": "27.51"}']
    assert doc[1].doc_line(steps[1].line) == "guide.md:16"


def test_default_ports_data_dir_and_placeholders_are_substituted(doc: list[Block], tmp_path: Path) -> None:
    terminal = Terminal({}, {"checkout": 5001, "emulator": 5002, "handler": 5003, "smtp": 5004,
                             "warehouse": 5005, "console": 5006}, tmp_path / "v")
    text = terminal.substitute("curl localhost:8080/x 127.0.0.1:8123 ls var/mail/ my-var/x", doc[1])
    assert text == f"curl 127.0.0.1:5001/x 127.0.0.1:5002 ls {tmp_path}/v/mail/ my-var/x"
    with pytest.raises(AssertionError, match=r"guide.md:11: <order_id> is used before"):
        terminal.substitute("GET /api/orders/<order_id>", doc[1])
    terminal.remember(doc[1], '{"order_id": "ord_x1"}')
    assert terminal.substitute("/api/orders/<order_id>", doc[1]) == "/api/orders/ord_x1"


def test_json_is_compared_by_keys_lengths_and_shown_values() -> None:
    shown = {"order_id": "ord_a", "tasks": [{"kind": "k", "task_name": "…"}], "tax": "3.61",
             "at": "2026-11-23T11:12:24.214228+00:00"}
    same = {"order_id": "ord_b", "tasks": [{"kind": "k", "task_name": "x"}], "tax": "3.61",
            "at": "2026-12-01T00:00:00Z", "extra": 1}
    assert json_mismatches(shown, same) == []
    assert json_mismatches(shown, {**same, "tax": "3.62"}) == ["$.tax: the doc shows '3.61', got '3.62'"]
    assert json_mismatches(shown, {**same, "tasks": []}) == ["$.tasks: the doc shows 1 items, got 0"]
    assert json_mismatches(shown, {k: v for k, v in same.items() if k != "order_id"}) == ["$.order_id: missing"]


def test_text_lines_in_order_with_ellipsis() -> None:
    out = "SKU   NAME\nBOOK-1  Notes  EUR 19.50\nMUG-1 Mug\n"
    assert text_mismatch(["SKU NAME", "BOOK-1 Notes EUR 19.50", "…"], out) is None
    assert text_mismatch(["MUG-1 Mug", "SKU NAME"], out) == "SKU NAME"
    assert text_mismatch(["BOOK-1  Notes … 19.50"], out) is None
    assert text_mismatch(["BOOK-1  Notes … 19.90"], out) == "BOOK-1 Notes … 19.90"


def test_headers_then_json(doc: list[Block]) -> None:
    step = console_steps(doc[1])[0]
    step.expected = ["HTTP/1.1 201 CREATED", "", '{"total": "27.51"}']
    assert output_mismatches(step, 'HTTP/1.1 201 CREATED\r\nX: y\r\n\r\n{"total": "27.51"}') == []
    assert output_mismatches(step, 'HTTP/1.1 400 BAD REQUEST\r\n\r\n{"total": "27.51"}') == [
        "the doc shows the line 'HTTP/1.1 201 CREATED', which the output lacks"]


def test_a_failure_names_the_doc_line_first(doc: list[Block]) -> None:
    done = subprocess.CompletedProcess(["bash"], 7, "out", "err")
    assert failure(doc[1], 5, "command failed", done).startswith("guide.md:16: command failed (exit 7)")


def test_the_failing_line_of_a_shell_block_is_found(tmp_path: Path) -> None:
    terminal = Terminal(dict(os.environ), {}, tmp_path)
    done = terminal.shell("true\ncurl --version > /dev/null\nfalse\necho never\n")
    assert done.returncode != 0 and "never" not in done.stdout
    assert shell_error_line(Block("guide.md", 10, "sh", ""), done) == 3


def test_env_marker_and_python_continuation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.docs import test_doc_blocks

    monkeypatch.setattr(blocks, "REPO", tmp_path)
    path = tmp_path / "lib.md"
    path.write_text("```python\nx = 1\n```\n\n<!-- run: continues -->\n<!-- env: PYTHONPATH=examples/shop "
                    "SHOP_URL=http://127.0.0.1:8080/ -->\n```python\nassert x == 1\nraise SystemExit(3)\n```\n",
                    encoding="utf-8")
    first, second = blocks_of(path)
    assert second.env == {"PYTHONPATH": "examples/shop", "SHOP_URL": "http://127.0.0.1:8080/"}
    monkeypatch.setattr(test_doc_blocks, "runnable_blocks", lambda: [first, second])
    source = test_doc_blocks.python_source(second)
    assert source.splitlines()[1] == "x = 1" and source.splitlines()[7] == "assert x == 1"   # the doc's lines 2 and 8
    terminal = Terminal(dict(os.environ), {**{p: 5000 + i for i, p in enumerate(DEFAULT_PORTS)}, "checkout": 5001},
                        tmp_path)
    assert terminal.block_env(second)["SHOP_URL"] == "http://127.0.0.1:5001/"
    done = terminal.python(source, "lib.md", terminal.block_env(second))
    assert done.returncode == 3, done.stderr
