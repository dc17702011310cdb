"""``Settings`` as value objects per concern, each read by its own ``from_env(reader)``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ordertasks.handlers.environment import PrefixedEnvironment
from ordertasks.handlers.errors import ConfigurationError
from ordertasks.handlers.settings import (Backend, OidcSettings, PaymentProcessor, PaymentSettings, SellerSettings,
                                          Settings, SmtpSettings, StoreSettings, TasksSettings, TasksTransport)
from tests.support.servers import free_port

REPO = Path(__file__).resolve().parents[2]


def env(**variables: str) -> PrefixedEnvironment:
    return PrefixedEnvironment({f"ORDERTASKS_{k}": v for k, v in variables.items()})


def test_an_empty_environment_reads_as_the_defaults() -> None:
    """The defaults live once, on the dataclasses; from_env({}) must not invent others."""
    assert Settings.from_env({}) == Settings()
    for group in (StoreSettings, TasksSettings, OidcSettings, PaymentSettings, SellerSettings):
        assert group.from_env(env()) == group()
    assert SmtpSettings.from_env(env(), cloud=False) == SmtpSettings()


def test_each_group_reads_its_own_variables(tmp_path: Path) -> None:
    store = StoreSettings.from_env(env(DATA_DIR=str(tmp_path), INVOICE_BUCKET="inv", FIRESTORE_DATABASE="shop"))
    assert (store.sqlite_file, store.blob_root, store.invoice_bucket, store.firestore_database) == (
        tmp_path / "ordertasks.db", tmp_path / "blobs", "inv", "shop")
    tasks = TasksSettings.from_env(PrefixedEnvironment({"CLOUD_TASKS_EMULATOR_HOST": "127.0.0.1:9",
                                                        "ORDERTASKS_ENQUEUE_MODE": "sequential",
                                                        "ORDERTASKS_TASKS_TRANSPORT": "rest"}))
    assert (tasks.emulator_host, tasks.enqueue_concurrently, tasks.transport) == ("127.0.0.1:9", False,
                                                                                  TasksTransport.REST)
    oidc = OidcSettings.from_env(env(OIDC_VERIFY="off", OIDC_ALLOWED_EMAILS="a@x.example,b@x.example"))
    assert (oidc.verify, oidc.allowed_emails) == (False, ("a@x.example", "b@x.example"))
    smtp = SmtpSettings.from_env(env(SMTP_PORT="2525", SMTP_TIMEOUT="3"))
    assert (smtp.port, smtp.timeout_seconds) == (2525, 3.0)
    assert PaymentSettings.from_env(env(PAYMENTS="stripe")).processor is PaymentProcessor.STRIPE
    assert SellerSettings.from_env(env(SELLER_TAX_ID="GB123")).tax_id == "GB123"


@pytest.mark.parametrize("port, starttls, implicit", [("587", True, False), ("465", False, True)])
def test_smtp_tls_is_on_by_default_in_the_cloud(port: str, starttls: bool, implicit: bool) -> None:
    smtp = SmtpSettings.from_env(env(SMTP_PORT=port), cloud=True)
    assert (smtp.starttls, smtp.implicit_tls) == (starttls, implicit)
    assert (SmtpSettings.from_env(env(SMTP_PORT=port)).starttls, SmtpSettings.from_env(env()).implicit_tls) == (
        False, False)


def test_derived_values_sit_where_they_belong() -> None:
    settings = Settings(tasks=TasksSettings(handler_url="https://h.example/", emulator_host="127.0.0.1:8123"))
    assert settings.audience == "https://h.example/"
    assert settings.certs_url == "http://127.0.0.1:8123/oauth2/v1/certs"
    assert Settings(backend=Backend.CLOUD, tasks=settings.tasks).certs_url == OidcSettings().certs_url
    assert (Settings().payment_processor, Settings(backend=Backend.CLOUD).payment_processor) == ("local", "stripe")
    test_cloud = Settings(backend=Backend.CLOUD, payment=PaymentSettings(processor=PaymentProcessor.LOCAL,
                                                                        allow_test_payments=True))
    assert test_cloud.test_payments and not Settings(payment=test_cloud.payment).test_payments


@pytest.mark.parametrize("name, value, message", [
    ("ORDERTASKS_SMTP_PORT", "x", "ORDERTASKS_SMTP_PORT='x' is not a number: give a whole number, e.g. 1025"),
    ("ORDERTASKS_SMTP_PORT", "70000", "ORDERTASKS_SMTP_PORT='70000' is out of range: use a number from 1 to 65535"),
    ("ORDERTASKS_SMTP_TIMEOUT", "0", "ORDERTASKS_SMTP_TIMEOUT='0' is out of range: use a number greater than 0"),
    ("ORDERTASKS_ENQUEUE_TIMEOUT", "soon", "ORDERTASKS_ENQUEUE_TIMEOUT='soon' is not a number"),
    ("ORDERTASKS_DELAY_SCALE", "-1", "ORDERTASKS_DELAY_SCALE='-1' is out of range: use a number of at least 0"),
    ("ORDERTASKS_STRIPE_TIMEOUT", "20s", "ORDERTASKS_STRIPE_TIMEOUT='20s' is not a number"),
    ("ORDERTASKS_ENQUEUE_MODE", "fast", "ORDERTASKS_ENQUEUE_MODE='fast' is not an enqueue mode: use concurrent or "
                                        "sequential"),
    ("ORDERTASKS_BACKEND", "Cloud", "ORDERTASKS_BACKEND='Cloud' is not a backend: use local or cloud"),
    ("ORDERTASKS_PAYMENTS", "paypal", "ORDERTASKS_PAYMENTS='paypal' is not a payment processor: use stripe or local"),
    ("ORDERTASKS_TASKS_TRANSPORT", "soap", "ORDERTASKS_TASKS_TRANSPORT='soap' is not a transport: use grpc or rest"),
])
def test_a_bad_value_is_refused_naming_the_variable(name: str, value: str, message: str) -> None:
    """Attack: ORDERTASKS_SMTP_PORT=x was a ValueError traceback; ENQUEUE_MODE=fast read as concurrent."""
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_env({name: value})
    assert str(raised.value).startswith(message)


def test_a_bad_number_stops_the_handler_command_without_a_traceback(tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ORDERTASKS_")}
    environ.update({"ORDERTASKS_SMTP_PORT": "x", "ORDERTASKS_DATA_DIR": str(tmp_path)})
    done = subprocess.run([sys.executable, "-m", "ordertasks.cli", "handler", "--port", str(free_port())], cwd=REPO,
                          env=environ, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "ORDERTASKS_SMTP_PORT='x' is not a number" in done.stderr
    assert "Traceback" not in done.stderr


def test_secrets_stay_out_of_repr() -> None:
    settings = Settings.from_env({"ORDERTASKS_SMTP_PASSWORD": "pw_do_not_print",
                                  "ORDERTASKS_STRIPE_SECRET_KEY": "sk_do_not_print",
                                  "ORDERTASKS_STRIPE_WEBHOOK_SECRET": "whsec_do_not_print"})
    assert "do_not_print" not in repr(settings)
    assert settings.smtp.password == "pw_do_not_print"


def test_direct_construction_takes_plain_strings_and_refuses_unknown_ones() -> None:
    assert Settings(backend="cloud").backend is Backend.CLOUD  # type: ignore[arg-type]
    assert TasksSettings(transport="rest").transport is TasksTransport.REST  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="ORDERTASKS_BACKEND='Cloud'"):
        Settings(backend="Cloud")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="ORDERTASKS_PAYMENTS='paypal'"):
        PaymentSettings(processor="paypal")  # type: ignore[arg-type]


def test_with_changes_replaces_fields_and_group_fields() -> None:
    base = Settings()
    changed = base.with_changes(backend="cloud", smtp={"port": 2525}, seller=SellerSettings(name="Shop"))
    assert (changed.backend, changed.smtp.port, changed.smtp.host, changed.seller.name) == (
        Backend.CLOUD, 2525, base.smtp.host, "Shop")
    assert base.smtp.port == SmtpSettings().port
    with pytest.raises(TypeError):
        base.with_changes(smtp={"prot": 1})
