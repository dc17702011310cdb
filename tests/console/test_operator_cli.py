"""Operator commands: where replays go, the backend flags, and what a shell without
credentials sees."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ordertasks.producer.backend_flags import add_backend_flags, settings_with_flags
from ordertasks.infra.config import REPO_ROOT, Settings
from ordertasks.handlers.settings import Backend, StoreSettings, TasksSettings
from ordertasks.producer.replay_target import ReplayTargetUnknown, handler_target, write_stack_record


def catalog_with_handler(tmp_path: Path, lines: str) -> Path:
    text = (REPO_ROOT / "infra" / "tasks.toml").read_text().replace("[handler]\n", "[handler]\n" + lines, 1)
    path = tmp_path / "tasks.toml"
    path.write_text(text)
    return path


def test_the_catalogs_handler_url_wins(tmp_path: Path) -> None:
    path = catalog_with_handler(tmp_path, 'url = "https://handler.example/"\naudience = "https://aud.example/"\n')
    settings = Settings(backend=Backend.CLOUD, catalog_path=path,
                        tasks=TasksSettings(handler_url="http://127.0.0.1:8081/"))
    target = handler_target(settings, settings.catalog())
    assert (target.url, target.audience) == ("https://handler.example/", "https://aud.example/")
    assert target.service_account_email == settings.catalog().service_account_email("dispatcher")


def test_in_the_cloud_the_default_is_the_gen2_function_url_not_the_shells() -> None:
    settings = Settings(backend=Backend.CLOUD, project="shop-prod", location="europe-west3",
                        tasks=TasksSettings(handler_url="http://127.0.0.1:8081/"))
    catalog = settings.catalog()
    target = handler_target(settings, catalog)
    expected = f"https://europe-west3-shop-prod.cloudfunctions.net/{catalog.handler_function}"
    assert (target.url, target.audience) == (expected, expected)
    assert target.service_account_email.endswith("@shop-prod.iam.gserviceaccount.com")


def test_locally_the_stack_record_names_the_handler(tmp_path: Path) -> None:
    settings = Settings(backend=Backend.LOCAL, store=StoreSettings(data_dir=tmp_path),
                        tasks=TasksSettings(handler_url="http://127.0.0.1:8081/"))
    with pytest.raises(ReplayTargetUnknown, match="cannot tell where the handler runs"):
        handler_target(settings, settings.catalog())
    write_stack_record(tmp_path, "http://127.0.0.1:40123/", "127.0.0.1:40124", "http://127.0.0.1:40125/")
    assert handler_target(settings, settings.catalog()).url == "http://127.0.0.1:40123/"


def test_flags_override_the_environment_and_absent_flags_keep_it(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_backend_flags(parser)
    env = Settings.from_env({"ORDERTASKS_PROJECT": "from-env", "CLOUD_TASKS_EMULATOR_HOST": "127.0.0.1:1"})
    kept = settings_with_flags(env, parser.parse_args([]))
    assert kept == env
    given = settings_with_flags(env, parser.parse_args(["--backend", "cloud", "--project", "p2", "--location", "l2",
                                                        "--emulator-host", "127.0.0.1:2", "--data-dir", str(tmp_path)]))
    assert given == env.with_changes(backend="cloud", project="p2", location="l2",
                                     tasks={"emulator_host": "127.0.0.1:2"}, store={"data_dir": tmp_path})
    assert (given.catalog().project, given.catalog().region) == ("p2", "l2")


def no_credentials_env(tmp_path: Path) -> dict[str, str]:
    """A shell with no Google credentials of any kind (and no metadata server)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ORDERTASKS_", "GOOGLE_", "CLOUDSDK_", "FIRESTORE_")) and k != "CLOUD_TASKS_EMULATOR_HOST"}
    return env | {"CLOUDSDK_CONFIG": str(tmp_path / "gcloud"), "GCE_METADATA_HOST": "127.0.0.1:9",
                  "GCE_METADATA_IP": "127.0.0.1:9", "NO_GCE_CHECK": "True"}


@pytest.mark.parametrize("command", [["failed", "list"], ["stats"], ["sweep"]])
def test_without_credentials_the_cli_says_what_to_run(tmp_path: Path, command: list[str]) -> None:
    out = subprocess.run([sys.executable, "-m", "cli", *command, "--backend", "cloud", "--project", "shop-prod",
                          "--location", "europe-west1"], env=no_credentials_env(tmp_path), cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "gcloud auth application-default login" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout

