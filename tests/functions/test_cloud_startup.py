"""No loopback defaults in the cloud: each missing or loopback setting is a refusal naming it,
for the handler and the checkout, checked by ``cloud_problems`` and at real start-up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ordertasks.handlers.cloud_readiness import cloud_problems, expand, is_loopback, require_cloud_ready
from ordertasks.handlers.errors import ConfigurationError
from ordertasks.infra.config import REPO_ROOT, Settings
from ordertasks.producer.checkout import create_app

SECRETS = {"ORDERTASKS_SMTP_PASSWORD": "smtp-pw-do-not-print", "ORDERTASKS_STRIPE_SECRET_KEY": "sk_live_do_not_print",
           "ORDERTASKS_STRIPE_WEBHOOK_SECRET": "whsec_do_not_print"}
COMPLETE = {
    "ORDERTASKS_BACKEND": "cloud", "ORDERTASKS_PROJECT": "shop-prod",
    "ORDERTASKS_HANDLER_URL": "https://europe-west1-shop-prod.cloudfunctions.net/ordertasks-handler",
    "ORDERTASKS_SMTP_HOST": "smtp.relay.my-shop.com", "ORDERTASKS_SMTP_PORT": "587",
    "ORDERTASKS_SMTP_USERNAME": "apikey", "ORDERTASKS_MAIL_FROM": "My Shop <orders@my-shop.com>",
    "ORDERTASKS_WAREHOUSE_URL": "https://wms.my-shop.com/notifications", "ORDERTASKS_PAYMENTS": "stripe",
    "ORDERTASKS_CHECKOUT_URL": "https://ordertasks-checkout-123456789.europe-west1.run.app/",
    **SECRETS,
}
HANDLER_NEEDS = ["ORDERTASKS_PROJECT", "ORDERTASKS_HANDLER_URL", "ORDERTASKS_SMTP_HOST", "ORDERTASKS_SMTP_PASSWORD",
                 "ORDERTASKS_MAIL_FROM", "ORDERTASKS_WAREHOUSE_URL"]
CHECKOUT_NEEDS = ["ORDERTASKS_PROJECT", "ORDERTASKS_HANDLER_URL", "ORDERTASKS_CHECKOUT_URL",
                  "ORDERTASKS_STRIPE_SECRET_KEY", "ORDERTASKS_STRIPE_WEBHOOK_SECRET"]


def settings(**changes: str | None) -> Settings:
    env = {**COMPLETE, **changes}
    return Settings.from_env({k: v for k, v in env.items() if v is not None})


@pytest.mark.parametrize("deployable", ["handler", "checkout"])
def test_a_complete_cloud_configuration_starts(deployable: str) -> None:
    assert cloud_problems(settings(), deployable) == []
    require_cloud_ready(settings(), deployable)


@pytest.mark.parametrize("variable", HANDLER_NEEDS)
def test_handler_names_each_missing_setting(variable: str) -> None:
    problems = cloud_problems(settings(**{variable: None}), "handler")
    assert len(problems) == 1 and problems[0].startswith(variable), problems


@pytest.mark.parametrize("variable", CHECKOUT_NEEDS)
def test_checkout_names_each_missing_setting(variable: str) -> None:
    problems = cloud_problems(settings(**{variable: None}), "checkout")
    assert len(problems) == 1 and problems[0].startswith(variable), problems


@pytest.mark.parametrize("variable, loopback", [
    ("ORDERTASKS_SMTP_HOST", "127.0.0.1"), ("ORDERTASKS_SMTP_HOST", "localhost"), ("ORDERTASKS_SMTP_HOST", "::1"),
    ("ORDERTASKS_WAREHOUSE_URL", "http://127.0.0.1:8090/notifications"),
    ("ORDERTASKS_WAREHOUSE_URL", "http://[::1]/n"), ("ORDERTASKS_WAREHOUSE_URL", "http://0.0.0.0/n"),
    ("ORDERTASKS_HANDLER_URL", "http://localhost:8081/"), ("ORDERTASKS_WAREHOUSE_URL", "wms.my-shop.com/n"),
])
def test_loopback_values_are_refused_like_missing_ones(variable: str, loopback: str) -> None:
    problems = cloud_problems(settings(**{variable: loopback}), "handler")
    assert [p.split(" ", 1)[0] for p in problems] == [variable]


def test_local_payments_need_the_explicit_test_flag() -> None:
    assert cloud_problems(settings(ORDERTASKS_PAYMENTS="local"), "checkout")[0].startswith("ORDERTASKS_PAYMENTS=local")
    assert cloud_problems(settings(ORDERTASKS_PAYMENTS="local", ORDERTASKS_ALLOW_TEST_PAYMENTS="true"), "checkout") == []


def test_a_loopback_stripe_api_base_is_refused() -> None:
    problems = cloud_problems(settings(ORDERTASKS_STRIPE_API_BASE="http://127.0.0.1:8420"), "checkout")
    assert [p.split(" ", 1)[0] for p in problems] == ["ORDERTASKS_STRIPE_API_BASE"]


def test_tls_is_on_by_default_in_the_cloud_and_off_locally() -> None:
    assert (settings().smtp.starttls, settings().smtp.implicit_tls) == (True, False)
    smtps = settings(ORDERTASKS_SMTP_PORT="465")
    assert (smtps.smtp.starttls, smtps.smtp.implicit_tls) == (False, True)
    local = Settings.from_env({})
    assert (local.smtp.starttls, local.smtp.implicit_tls) == (False, False)


def test_login_without_tls_is_refused() -> None:
    problems = cloud_problems(settings(ORDERTASKS_SMTP_STARTTLS="false"), "handler")
    assert len(problems) == 1 and "in clear" in problems[0]


def test_every_problem_is_named_at_once() -> None:
    empty = Settings.from_env({"ORDERTASKS_BACKEND": "cloud"})
    with pytest.raises(ConfigurationError) as raised:
        require_cloud_ready(empty, "handler")
    message = str(raised.value)
    assert message.startswith("the handler refuses to start with ORDERTASKS_BACKEND=cloud")
    for variable in ("ORDERTASKS_PROJECT", "ORDERTASKS_HANDLER_URL", "ORDERTASKS_SMTP_HOST", "ORDERTASKS_MAIL_FROM",
                     "ORDERTASKS_WAREHOUSE_URL"):
        assert f"  - {variable} " in message


def test_the_local_backend_is_never_refused() -> None:
    require_cloud_ready(Settings.from_env({}), "handler")
    require_cloud_ready(Settings.from_env({}), "checkout")


def test_problems_never_quote_a_secret() -> None:
    broken = settings(ORDERTASKS_SMTP_STARTTLS="false", ORDERTASKS_SMTP_HOST="127.0.0.1",
                      ORDERTASKS_STRIPE_API_BASE="http://localhost")
    text = "\n".join(p for d in ("handler", "checkout") for p in cloud_problems(broken, d))
    assert text and not any(secret in text for secret in SECRETS.values())


def test_checkout_app_refuses_to_be_built() -> None:
    with pytest.raises(ConfigurationError, match="ORDERTASKS_STRIPE_SECRET_KEY"):
        create_app(settings(ORDERTASKS_STRIPE_SECRET_KEY=None))


def test_url_variables_expand_and_missing_ones_are_named() -> None:
    env = {"CRM_HOST": "crm.my-shop.com"}.get
    assert expand("https://${CRM_HOST}/hooks/${CRM_PATH:-orders}", env) == ("https://crm.my-shop.com/hooks/orders", [])
    assert expand("https://${CRM_HOST}/${CRM_KEY}", env)[1] == ["CRM_KEY"]


@pytest.mark.parametrize("host, loopback", [("127.0.0.2", True), ("localhost", True), ("a.localhost", True),
                                            ("", True), ("10.0.0.5", False), ("smtp.example.com", False)])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def _start(argv: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ORDERTASKS_")}
    return subprocess.run(argv, env={**base, **env, "ORDERTASKS_DATA_DIR": str(tmp_path)}, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60, check=False)


def test_the_function_process_refuses_to_start(tmp_path: Path) -> None:
    # What Cloud Run does with the deployed source: functions-framework loads main.py.
    argv = [str(Path(sys.executable).with_name("functions-framework")), "--target", "handle_task",
            "--source", "main.py", "--port", "0"]
    result = _start(argv, {**COMPLETE, "ORDERTASKS_SMTP_HOST": "127.0.0.1", "ORDERTASKS_WAREHOUSE_URL": ""}, tmp_path)
    assert result.returncode != 0
    assert "ORDERTASKS_SMTP_HOST is unset or loopback" in result.stderr
    assert "ORDERTASKS_WAREHOUSE_URL is unset or loopback" in result.stderr
    assert not any(secret in result.stderr + result.stdout for secret in SECRETS.values())


def test_the_checkout_process_refuses_to_start(tmp_path: Path) -> None:
    # How Cloud Run serves the checkout: gunicorn on the app factory.
    argv = [str(Path(sys.executable).with_name("gunicorn")), "--bind", "127.0.0.1:0", "--workers", "1",
            "ordertasks.producer.serve:app_from_env()"]
    result = _start(argv, {**COMPLETE, "ORDERTASKS_PAYMENTS": "local"}, tmp_path)
    assert result.returncode != 0
    assert "ORDERTASKS_PAYMENTS=local takes no money" in result.stderr
    assert not any(secret in result.stderr + result.stdout for secret in SECRETS.values())
