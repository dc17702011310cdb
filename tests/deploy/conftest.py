"""Fixtures for the deploy tests: the real gcloud, a temporary gcloud config, the local
Cloud Tasks emulator and a recording stand-in for the other Google APIs."""

from __future__ import annotations

import hashlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ordertasks.infra.config import DEFAULT_CATALOG, load_catalog
from ordertasks.infra.deploy import Runner, Target, gcloud_runner, make_target
from tests.deploy.recorder import Recorder, serve
from tests.support.servers import ServerProcess, free_port, http_ok, need_binary

PROJECT, REGION = "shop-test", "europe-west1"
CHECKOUT_URL = "https://checkout.shop.example"


@pytest.fixture(autouse=True)
def working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test runs in a directory of its own, as a shop runs deploy in its project: what the
    plan stages (``.ordertasks/deploy``) lands there, never in the repository."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def gcloud() -> str:
    """Path of the real gcloud; fails the test in CI when it is missing."""
    return need_binary("gcloud", "deploy commands are checked by the real gcloud")


@pytest.fixture(scope="session")
def gcloud_env(gcloud: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for an offline gcloud: own config dir, no credentials, no prompts."""
    return {"CLOUDSDK_CONFIG": str(tmp_path_factory.mktemp("gcloud-config")),
            "CLOUDSDK_CORE_PROJECT": PROJECT, "CLOUDSDK_AUTH_DISABLE_CREDENTIALS": "true",
            "CLOUDSDK_CORE_DISABLE_PROMPTS": "1", "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "true",
            "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true"}


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """A recording stand-in for Google's APIs on a free loopback port."""
    yield from serve()


def recorded_runner(gcloud_env: dict[str, str], recorder: Recorder) -> Runner:
    """A runner whose gcloud sends every API call to ``recorder``."""
    return gcloud_runner({**gcloud_env, **recorder.env()})


CLOUD_SECTION = Path(__file__).with_name("cloud-section.toml")


def complete_catalog(base: Path = DEFAULT_CATALOG) -> Path:
    """``base`` with a complete ``[cloud]`` section appended, in a file that lives for the session."""
    text = base.read_text(encoding="utf-8") + "\n" + CLOUD_SECTION.read_text(encoding="utf-8")
    path = Path(tempfile.gettempdir()) / f"ordertasks-complete-{hashlib.sha256(text.encode()).hexdigest()[:12]}.toml"
    if not path.exists():
        path.write_text(text, encoding="utf-8")
    return path


COMPLETE = complete_catalog()


def target(catalog_path: Path | None = None, **overrides: Any) -> Target:
    """The deployment target the tests use: fixed project and region, the complete catalog."""
    return make_target(load_catalog(catalog_path or COMPLETE), overrides.pop("project", PROJECT),
                       overrides.pop("region", REGION), checkout_url=CHECKOUT_URL, **overrides)


def _healthy(port: int) -> bool:
    return http_ok(port)


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[str]:
    """Start the local Cloud Tasks emulator; yield its base URL."""
    port = free_port()
    server = ServerProcess([sys.executable, "-m", "ordertasks.infra.emulator", "--port", str(port), "--db", str(tmp_path / "tasks.db")],
                           port, log_path=tmp_path / "emulator.log", ready=lambda: _healthy(port))
    server.start(timeout=30)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
