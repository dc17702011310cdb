"""The cloud never fakes money: which gateway each configuration gets, and test orders marked.

The review found the cloud checkout "charging" through the local test gateway (``tok_visa``
always succeeds, nothing is charged, the ledger a SQLite file on each instance's disk) with
only a log line to warn. Now the cloud defaults to Stripe; ``local`` there refuses to start
unless ``ORDERTASKS_ALLOW_TEST_PAYMENTS=true``, and then every order says ``test: true``.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from ordertasks.handlers.errors import ConfigurationError
from ordertasks.infra.config import Settings
from ordertasks.handlers.settings import Backend, StoreSettings
from ordertasks.producer import wiring
from ordertasks.producer.checkout import create_app
from ordertasks.producer.ledger_sqlite import SqliteLedger
from ordertasks.producer.payments import LocalGateway
from ordertasks.producer.pricebook_sqlite import SqlitePriceBook
from ordertasks.producer.stripe_gateway import StripeGateway
from tests.producer.conftest import Stack, order_body

CLOUD = {"ORDERTASKS_BACKEND": "cloud", "ORDERTASKS_PROJECT": "shop-prod",
         "ORDERTASKS_HANDLER_URL": "https://europe-west1-shop-prod.cloudfunctions.net/ordertasks-handler"}


def _env(**changes: str) -> Settings:
    return Settings.from_env({**CLOUD, **changes})


def test_the_cloud_default_is_stripe_and_local_stays_local() -> None:
    assert _env().payment_processor == "stripe"
    assert Settings.from_env({}).payment_processor == "local"
    assert Settings.from_env({"ORDERTASKS_PAYMENTS": "stripe"}).payment_processor == "stripe"


def test_an_unknown_processor_stops_start_up_naming_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="ORDERTASKS_PAYMENTS='paypal' is not a payment processor"):
        Settings.from_env({"ORDERTASKS_PAYMENTS": "paypal"})


def test_cloud_with_local_payments_refuses_to_start(tmp_path: Path) -> None:
    settings = _env(ORDERTASKS_PAYMENTS="local")
    with pytest.raises(ConfigurationError, match="ORDERTASKS_PAYMENTS=local takes no money"):
        create_app(settings)
    with pytest.raises(ConfigurationError, match="ORDERTASKS_ALLOW_TEST_PAYMENTS=true"):
        wiring.payment_gateway(settings, SqliteLedger(tmp_path / "x.db"))


@pytest.mark.parametrize("value", ["false", "0", "no"])
def test_only_an_explicit_true_allows_test_payments(value: str) -> None:
    assert not _env(ORDERTASKS_PAYMENTS="local", ORDERTASKS_ALLOW_TEST_PAYMENTS=value).test_payments
    with pytest.raises(ConfigurationError, match="ALLOW_TEST_PAYMENTS"):
        Settings.from_env({**CLOUD, "ORDERTASKS_ALLOW_TEST_PAYMENTS": "sure"})


def test_stripe_needs_its_secret_key() -> None:
    with pytest.raises(ConfigurationError, match="ORDERTASKS_STRIPE_SECRET_KEY"):
        wiring.payment_gateway(Settings.from_env({"ORDERTASKS_PAYMENTS": "stripe"}))
    gateway = wiring.payment_gateway(Settings.from_env({"ORDERTASKS_PAYMENTS": "stripe",
                                                        "ORDERTASKS_STRIPE_SECRET_KEY": "sk_test_1"}))
    assert isinstance(gateway, StripeGateway)


def test_secrets_are_not_in_the_settings_repr() -> None:
    settings = Settings.from_env({"ORDERTASKS_STRIPE_SECRET_KEY": "sk_live_do_not_print",
                                  "ORDERTASKS_STRIPE_WEBHOOK_SECRET": "whsec_do_not_print"})
    assert "do_not_print" not in repr(settings)


def test_the_local_ledger_is_the_order_store_not_a_side_file(tmp_path: Path) -> None:
    settings = Settings(store=StoreSettings(data_dir=tmp_path))
    gateway = wiring.payment_gateway(settings)
    assert isinstance(gateway, LocalGateway)
    gateway.charge("ord_1", Decimal("5.00"), "EUR", "tok_visa")
    assert [p.order_id for p in SqliteLedger(settings.store.sqlite_file).list_payments()] == ["ord_1"]
    assert not (tmp_path / "payments.db").exists()


def test_with_the_explicit_allow_every_order_is_marked_test(stack: Stack) -> None:
    cloud = stack.settings.with_changes(
        backend=Backend.CLOUD, project="shop-prod", payment={"processor": "local", "allow_test_payments": True},
        tasks={"handler_url": "https://europe-west1-shop-prod.cloudfunctions.net/ordertasks-handler",
               "checkout_url": "https://ordertasks-checkout-123456789.europe-west1.run.app"})
    ledger = SqliteLedger(stack.settings.store.sqlite_file)
    app = create_app(cloud, store=stack.store, enqueuer=stack.enqueuer, ledger=ledger,
                     price_book=SqlitePriceBook(stack.settings.store.sqlite_file))
    resp = app.test_client().post("/api/checkout", json=order_body())
    assert resp.status_code in (201, 202), resp.get_json()
    body = resp.get_json()
    assert body["test"] is True
    order = stack.store.orders.get_order(body["order_id"])
    assert order is not None and order.snapshot["test"] is True
    assert app.test_client().get(f"/api/orders/{body['order_id']}").get_json()["test"] is True
    [payment] = ledger.list_payments()
    assert payment.test is True and payment.processor == "local"


def test_local_orders_are_not_marked_test(stack: Stack) -> None:
    body = stack.client.post("/api/checkout", json=order_body()).get_json()
    assert "test" not in body
    assert stack.client.get(f"/api/orders/{body['order_id']}").get_json()["test"] is False
