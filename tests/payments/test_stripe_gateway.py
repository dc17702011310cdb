"""``StripeGateway`` against localstripe, through a recording proxy.

What localstripe does with Stripe's test cards (checked against its 1.15 source and by
these tests): 4242 4242 4242 4242 succeeds; 4000 0000 0000 0341 is declined when charged
(``card_declined``); 4000 0000 0000 0002 is declined only when *attached to a customer*,
so a PaymentIntent with it succeeds there — we test declines with 0341; 4000 0027 6000 3184
and 4000 0000 0000 3220 need 3-D Secure (``requires_action``). localstripe ignores
``Idempotency-Key``, so the proxy proves the adapter sends it and keeps it across retries.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from ordertasks.producer.payments import PaymentDeclined, PaymentRequiresAction, PaymentUnavailable
from ordertasks.producer.stripe_gateway import StripeGateway, charge_key, refund_key
from tests.payments.conftest import SECRET_KEY, Proxy, payment_method, stripe_get
from tests.support.servers import free_port

VISA = "4242424242424242"
DECLINED_WHEN_CHARGED = "4000000000000341"
THREE_D_SECURE = ["4000002760003184", "4000000000003220"]


def _gateway(base: str, **options: float) -> StripeGateway:
    return StripeGateway(SECRET_KEY, api_base=base, **options)  # type: ignore[arg-type]


def test_success_charges_the_total_in_minor_units_with_the_order_as_key(proxy: Proxy, localstripe: str) -> None:
    intent_id = _gateway(proxy.url).charge("ord_s1", Decimal("27.51"), "EUR", payment_method(localstripe, VISA))
    assert intent_id.startswith("pi_")
    [create] = proxy.posts("/v1/payment_intents")
    assert create.headers["Idempotency-Key"] == charge_key("ord_s1") == "ordertasks-charge-ord_s1"
    intent = stripe_get(localstripe, f"/v1/payment_intents/{intent_id}")
    assert (intent["amount"], intent["currency"], intent["status"]) == (2751, "eur", "succeeded")
    assert intent["metadata"] == {"order_id": "ord_s1"}


def test_yen_has_no_minor_unit(proxy: Proxy, localstripe: str) -> None:
    intent_id = _gateway(proxy.url).charge("ord_s2", Decimal("1899"), "JPY", payment_method(localstripe, VISA))
    assert stripe_get(localstripe, f"/v1/payment_intents/{intent_id}")["amount"] == 1899


def test_a_declined_card_is_payment_declined(proxy: Proxy, localstripe: str) -> None:
    with pytest.raises(PaymentDeclined, match="declined"):
        _gateway(proxy.url).charge("ord_d1", Decimal("10.00"), "EUR", payment_method(localstripe, DECLINED_WHEN_CHARGED))


def test_an_unknown_payment_method_is_payment_declined(proxy: Proxy) -> None:
    with pytest.raises(PaymentDeclined):
        _gateway(proxy.url).charge("ord_d2", Decimal("10.00"), "EUR", "pm_does_not_exist")


@pytest.mark.parametrize("card", THREE_D_SECURE)
def test_three_d_secure_requires_action_with_the_client_secret(proxy: Proxy, localstripe: str, card: str) -> None:
    with pytest.raises(PaymentRequiresAction) as caught:
        _gateway(proxy.url).charge("ord_3ds", Decimal("10.00"), "EUR", payment_method(localstripe, card))
    intent = stripe_get(localstripe, f"/v1/payment_intents/{caught.value.payment_id}")
    assert intent["status"] == "requires_action"
    assert caught.value.client_secret == intent["client_secret"]
    assert caught.value.client_secret.startswith(caught.value.payment_id + "_secret_")


def test_a_5xx_is_retried_with_the_same_key_and_charges_once(proxy: Proxy, localstripe: str) -> None:
    proxy.fail_next = [500]
    intent_id = _gateway(proxy.url).charge("ord_r1", Decimal("5.00"), "EUR", payment_method(localstripe, VISA))
    creates = proxy.posts("/v1/payment_intents")
    assert len(creates) == 2
    assert {c.headers["Idempotency-Key"] for c in creates} == {charge_key("ord_r1")}
    assert stripe_get(localstripe, f"/v1/payment_intents/{intent_id}")["status"] == "succeeded"


def test_stripe_down_is_payment_unavailable(proxy: Proxy, localstripe: str) -> None:
    token = payment_method(localstripe, VISA)
    proxy.fail_next = [503, 503, 503]
    with pytest.raises(PaymentUnavailable, match="nothing was charged twice"):
        _gateway(proxy.url).charge("ord_u1", Decimal("5.00"), "EUR", token)
    with pytest.raises(PaymentUnavailable):
        _gateway(f"http://127.0.0.1:{free_port()}").charge("ord_u2", Decimal("5.00"), "EUR", token)


def test_a_timeout_is_unavailable_and_the_retry_sends_the_same_key(proxy: Proxy, localstripe: str) -> None:
    token = payment_method(localstripe, VISA)
    proxy.delay_next = [3.0]
    with pytest.raises(PaymentUnavailable):
        _gateway(proxy.url, timeout=0.5, max_network_retries=0).charge("ord_t1", Decimal("5.00"), "EUR", token)
    _gateway(proxy.url).charge("ord_t1", Decimal("5.00"), "EUR", token)   # the customer's retry
    keys = [c.headers["Idempotency-Key"] for c in proxy.posts("/v1/payment_intents")]
    # Real Stripe answers the retry with the first intent; localstripe cannot, so the key is the proof.
    assert keys == [charge_key("ord_t1")] * 2


def test_a_refund_after_capture_uses_its_own_key(proxy: Proxy, localstripe: str) -> None:
    gateway = _gateway(proxy.url)
    intent_id = gateway.charge("ord_f1", Decimal("12.00"), "EUR", payment_method(localstripe, VISA))
    refund_id = gateway.refund("ord_f1", intent_id)
    assert refund_id.startswith("re_")
    [refund] = proxy.posts("/v1/refunds")
    assert refund.headers["Idempotency-Key"] == refund_key("ord_f1")
    assert stripe_get(localstripe, f"/v1/refunds/{refund_id}")["amount"] == 1200


def test_the_secret_key_is_not_in_any_error_message(proxy: Proxy, localstripe: str) -> None:
    proxy.fail_next = [503, 503, 503]
    with pytest.raises(PaymentUnavailable) as caught:
        _gateway(proxy.url).charge("ord_k1", Decimal("5.00"), "EUR", "pm_x")
    assert SECRET_KEY not in str(caught.value) and SECRET_KEY not in repr(caught.value.__cause__)
