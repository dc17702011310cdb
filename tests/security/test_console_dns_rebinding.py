"""Item F7: the console keeps its Host allow-list whatever ``--host`` it listens on.

With ``ordertasks console --host`` other than loopback the allow-list used to be switched
off, so a page reached by DNS rebinding (its own name re-pointed at the console's address)
got a CSRF token and paused and resumed a queue. Now only loopback names, the ``--host``
itself and the names given with ``--allowed-host`` are answered. The console runs as a real
process on 127.0.0.2 against a real emulator; the attacker's requests carry the attacker's
own Host, as a rebinding browser sends it.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from google.cloud import tasks_v2

from ordertasks.infra.config import Settings
from ordertasks.infra.console import console_from_settings, create_app
from ordertasks.handlers.settings import Backend, StoreSettings, TasksSettings
from tests.emulator.conftest import Emulator, start_emulator
from tests.support.samples import fast_catalog
from tests.support.servers import ServerProcess, free_port, port_open

BIND = "127.0.0.2"
QUEUE = "ordertasks-email"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
REFUSED = (400, 403, 421)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fast_catalog(tmp_path_factory.mktemp("rebinding-catalog"))


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory, catalog: Path) -> Iterator[Emulator]:
    """An emulator of its own holding the catalog's queues (this module pauses one)."""
    emu = start_emulator(tmp_path_factory.mktemp("rebinding-emulator"), extra=["--queues", str(catalog)])
    try:
        yield emu
    finally:
        emu.process.stop()


Console = Callable[..., str]


@pytest.fixture
def console(tmp_path: Path, catalog: Path, emulator: Emulator) -> Iterator[Console]:
    """Start ``ordertasks console --host 127.0.0.2 [flags]``; returns its base URL."""
    started: list[ServerProcess] = []

    def start(*flags: str) -> str:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERTASKS_")}
        env |= {"ORDERTASKS_CONFIG": str(catalog), "ORDERTASKS_DATA_DIR": str(tmp_path),
                "CLOUD_TASKS_EMULATOR_HOST": f"127.0.0.1:{emulator.port}"}
        server = ServerProcess([sys.executable, "-m", "cli", "console", "--host", BIND, "--port", str(port), "--init", *flags],
                               port, env=env, log_path=tmp_path / f"console-{port}.log",
                               ready=lambda: port_open(port, BIND))
        started.append(server.start(timeout=60))
        return f"http://{BIND}:{port}"
    try:
        yield start
    finally:
        for server in started:
            server.stop()


def queue_state(emulator: Emulator, catalog: Path) -> tasks_v2.Queue.State:
    cat = Settings(catalog_path=catalog).catalog()
    name = f"projects/{cat.project}/locations/{cat.region}/queues/{QUEUE}"
    return emulator.client().get_queue(name=name).state


def port_of(base: str) -> str:
    return base.rsplit(":", 1)[1]


def assert_refused_without_a_token(answer: requests.Response) -> None:
    assert answer.status_code in REFUSED, (answer.status_code, answer.text[:300])
    assert "csrf_token" not in answer.text and "Set-Cookie" not in answer.headers
    assert "--allowed-host" in answer.text           # the page says how to allow a name on purpose


def test_a_rebound_page_gets_no_token_on_a_non_loopback_bind(console: Console, emulator: Emulator,
                                                             catalog: Path) -> None:
    """Attack: DNS rebinding against `--host 127.0.0.2`: the page asks for the pause form under its own name."""
    base = console()
    evil = {"Host": f"evil.example:{port_of(base)}"}
    assert_refused_without_a_token(requests.get(f"{base}/", headers=evil, timeout=10))
    assert_refused_without_a_token(requests.get(f"{base}/queues/{QUEUE}/pause", headers=evil, timeout=10))
    assert_refused_without_a_token(requests.get(f"{base}/no/such/page", headers=evil, timeout=10))
    assert queue_state(emulator, catalog) == tasks_v2.Queue.State.RUNNING


def test_a_rebound_page_cannot_pause_even_with_a_valid_session(console: Console, emulator: Emulator,
                                                               catalog: Path) -> None:
    """Attack: the same page POSTs the pause with a token and cookie taken from a real session."""
    base = console()
    form = requests.get(f"{base}/queues/{QUEUE}/pause", timeout=10)
    token = TOKEN.search(form.text)
    assert token, "the console's own name must still get the form"
    cookie = "; ".join(f"{c.name}={c.value}" for c in form.cookies)
    answer = requests.post(f"{base}/queues/{QUEUE}/pause", data={"csrf_token": token.group(1)}, timeout=10,
                           headers={"Host": f"evil.example:{port_of(base)}", "Cookie": cookie}, allow_redirects=False)
    assert answer.status_code in REFUSED and "--allowed-host" in answer.text, answer.text[:300]
    assert queue_state(emulator, catalog) == tasks_v2.Queue.State.RUNNING


def test_a_name_given_with_allowed_host_is_answered(console: Console, emulator: Emulator, catalog: Path) -> None:
    """Attack: none; `--allowed-host NAME` is how an operator reaches the console by a name on purpose."""
    base = console("--allowed-host", "console.example")
    named = {"Host": f"console.example:{port_of(base)}"}
    session = requests.Session()
    token = TOKEN.search(session.get(f"{base}/queues/{QUEUE}/pause", headers=named, timeout=10).text)
    assert token
    try:
        paused = session.post(f"{base}/queues/{QUEUE}/pause", data={"csrf_token": token.group(1)}, headers=named,
                              timeout=10, allow_redirects=False)
        assert paused.status_code == 302
        assert queue_state(emulator, catalog) == tasks_v2.Queue.State.PAUSED
    finally:
        session.post(f"{base}/queues/{QUEUE}/resume", data={"csrf_token": token.group(1)}, headers=named, timeout=10)
    assert queue_state(emulator, catalog) == tasks_v2.Queue.State.RUNNING
    evil = {"Host": f"evil.example:{port_of(base)}"}
    assert_refused_without_a_token(requests.get(f"{base}/", headers=evil, timeout=10))


@pytest.mark.parametrize("bind", ["0.0.0.0", "::"])
def test_a_wildcard_bind_does_not_mean_any_host(bind: str, tmp_path: Path, catalog: Path, emulator: Emulator) -> None:
    """Attack: DNS rebinding against `--host 0.0.0.0` (every interface): still only loopback and named hosts."""
    settings = Settings(backend=Backend.LOCAL, catalog_path=catalog, store=StoreSettings(data_dir=tmp_path),
                        tasks=TasksSettings(emulator_host=f"127.0.0.1:{emulator.port}"))
    client = create_app(console_from_settings(settings), host=bind, allowed_hosts=["shop-ops.internal"]).test_client()
    for evil in ("evil.example", "evil.example:8088", "0.0.0.0:8088", "[::]:8088", ""):
        answer = client.get(f"/queues/{QUEUE}/pause", headers={"Host": evil})
        assert answer.status_code in REFUSED and "csrf_token" not in answer.text, evil
    for good in ("127.0.0.1:8088", "localhost:8088", "[::1]:8088", "shop-ops.internal:8088", "SHOP-OPS.internal"):
        answer = client.get(f"/queues/{QUEUE}/pause", headers={"Host": good})
        assert answer.status_code == 200 and "csrf_token" in answer.text, good
