"""Item 1: boolean settings fail closed; OIDC off is refused in the cloud and warned about locally."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ordertasks.handlers.errors import ConfigurationError
from ordertasks.handlers.config import Settings
from tests.support.servers import free_port

BOOLEAN_SETTINGS = ("ORDERTASKS_OIDC_VERIFY", "ORDERTASKS_SMTP_STARTTLS", "ORDERTASKS_SMTP_IMPLICIT_TLS")
NOT_BOOLEANS = ("enabled", "y", "ture", "required", "disabled", "2", "-1", "t", "enable", "n")
TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", BOOLEAN_SETTINGS)
@pytest.mark.parametrize("word", NOT_BOOLEANS)
def test_a_misspelt_boolean_refuses_to_start(name: str, word: str) -> None:
    """Attack: ORDERTASKS_OIDC_VERIFY=enabled (or any near-miss) silently turned verification off."""
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_env({name: word})
    assert name in str(raised.value) and repr(word) in str(raised.value)


@pytest.mark.parametrize("word", sorted(TRUE_WORDS) + [w.upper() for w in TRUE_WORDS] + [" True "])
def test_every_true_word_turns_a_boolean_on(word: str) -> None:
    """Attack: none; the accepted spellings of true keep working, in any case."""
    settings = Settings.from_env({"ORDERTASKS_SMTP_STARTTLS": word, "ORDERTASKS_OIDC_VERIFY": word})
    assert (settings.smtp.starttls, settings.oidc.verify) == (True, True)


@pytest.mark.parametrize("word", sorted(FALSE_WORDS) + [w.title() for w in FALSE_WORDS])
def test_every_false_word_turns_a_boolean_off(word: str) -> None:
    """Attack: none; the accepted spellings of false keep working, in any case."""
    settings = Settings.from_env({"ORDERTASKS_SMTP_STARTTLS": word, "ORDERTASKS_OIDC_VERIFY": word})
    assert (settings.smtp.starttls, settings.oidc.verify) == (False, False)


def test_unset_or_empty_keeps_the_safe_default() -> None:
    """Attack: an empty ORDERTASKS_OIDC_VERIFY= must not read as false."""
    assert Settings.from_env({}).oidc.verify is True
    assert Settings.from_env({"ORDERTASKS_OIDC_VERIFY": ""}).oidc.verify is True


@pytest.mark.parametrize("word", sorted(FALSE_WORDS))
def test_oidc_off_is_refused_with_the_cloud_backend(word: str) -> None:
    """Attack: a production handler deployed with ORDERTASKS_OIDC_VERIFY=false accepts anyone."""
    with pytest.raises(ConfigurationError, match="ORDERTASKS_OIDC_VERIFY.*ORDERTASKS_BACKEND=cloud"):
        Settings.from_env({"ORDERTASKS_BACKEND": "cloud", "ORDERTASKS_OIDC_VERIFY": word})


def test_an_unknown_backend_is_refused() -> None:
    """Attack: ORDERTASKS_BACKEND=Cloud silently ran the local backend (and its relaxed rules)."""
    with pytest.raises(ConfigurationError, match="ORDERTASKS_BACKEND='Cloud'"):
        Settings.from_env({"ORDERTASKS_BACKEND": "Cloud"})


def test_oidc_off_locally_is_logged_at_warning(caplog: pytest.LogCaptureFixture) -> None:
    """Attack: verification turned off without anyone noticing in the logs."""
    with caplog.at_level(logging.WARNING):
        Settings.from_env({"ORDERTASKS_OIDC_VERIFY": "false"})
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("ORDERTASKS_OIDC_VERIFY" in r.getMessage() for r in warnings)


def test_the_handler_command_refuses_to_start_on_a_misspelt_boolean(tmp_path: Path) -> None:
    """Attack: `ordertasks handler` started with ORDERTASKS_OIDC_VERIFY=enabled served without auth."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERTASKS_")}
    env.update({"ORDERTASKS_OIDC_VERIFY": "enabled", "ORDERTASKS_DATA_DIR": str(tmp_path)})
    done = subprocess.run([sys.executable, "-m", "cli", "handler", "--port", str(free_port())], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "ORDERTASKS_OIDC_VERIFY='enabled' is not a boolean" in done.stderr
    assert "Traceback" not in done.stderr


def test_functions_framework_refuses_to_start_on_a_misspelt_boolean(tmp_path: Path) -> None:
    """Attack: on Cloud Functions (no `ordertasks handler`) a misspelt boolean built a handler without auth."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERTASKS_")}
    env.update({"ORDERTASKS_OIDC_VERIFY": "enabled", "ORDERTASKS_DATA_DIR": str(tmp_path)})
    framework = Path(sys.executable).with_name("functions-framework")
    done = subprocess.run([str(framework), "--target", "handle_task", "--source", str(REPO / "main.py"),
                           "--host", "127.0.0.1", "--port", str(free_port())], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0
    assert "ORDERTASKS_OIDC_VERIFY='enabled' is not a boolean" in done.stderr


def test_a_misspelt_allow_test_payments_is_named_in_the_cloud() -> None:
    """Attack: ORDERTASKS_ALLOW_TEST_PAYMENTS=ture read as false hid the real mistake behind another message."""
    from ordertasks.handlers.cloud_readiness import require_cloud_ready
    from tests.functions.test_cloud_startup import COMPLETE

    env = {**COMPLETE, "ORDERTASKS_CHECKOUT_URL": "https://ordertasks-checkout-123456789.europe-west1.run.app",
           "ORDERTASKS_PAYMENTS": "local", "ORDERTASKS_ALLOW_TEST_PAYMENTS": "ture"}
    with pytest.raises(ConfigurationError, match="ORDERTASKS_ALLOW_TEST_PAYMENTS='ture' is not a boolean"):
        require_cloud_ready(Settings.from_env(env), "checkout")
    require_cloud_ready(Settings.from_env({**env, "ORDERTASKS_ALLOW_TEST_PAYMENTS": "YES"}), "checkout")
