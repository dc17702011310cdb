"""Issue 28, F2: cancelling (and so refunding) an order needs authority.

Before, ``POST /api/orders/<id>/cancel`` needed nothing but the id, which a customer could
even choose (``order_id`` in the checkout body), and it refunded an order whose warehouse
notification had gone out. Each test is one attack, over the real checkout app (Flask test
client), the Cloud Tasks emulator and SQLite; the gateway is the local one, counting refunds.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from ordertasks.handlers.config import Settings
from ordertasks.handlers.contract import encode
from ordertasks.handlers.dispatch import Delivery, Outcome
from ordertasks.handlers.errors import ConfigurationError, DependencyUnavailable
from ordertasks.handlers.wiring import build_dispatcher
from ordertasks.producer.api_errors import ApiError
from ordertasks.producer.checkout import create_app
from ordertasks.producer.ledger import MemoryLedger, cancel_digest, new_cancel_token, token_matches
from ordertasks.producer.orders import Checkout, new_order_id
from tests.effects.orders import eur_order
from tests.payments.gateways import CountingGateway
from tests.producer.conftest import Emulator, Stack, build_stack, emulator, order_body  # noqa: F401

WAREHOUSE = "notify_warehouse"


def _shop(tmp_path: Path, emulator: Emulator, **settings: Any) -> Stack:  # noqa: F811
    built = build_stack(tmp_path, emulator, **settings)
    gateway = CountingGateway()
    app = create_app(built.settings, store=built.store, enqueuer=built.enqueuer, gateway=gateway)
    return replace(built, app=app, gateway=gateway)


@pytest.fixture
def shop(tmp_path: Path, emulator: Emulator) -> Iterator[Stack]:  # noqa: F811
    """The checkout with customer cancellation on (the local default)."""
    built = _shop(tmp_path, emulator)
    yield built
    built.enqueuer.close()
    built.store.close()


def _place(shop: Stack) -> dict[str, Any]:
    resp = shop.client.post("/api/checkout", json=order_body())
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.get_json()  # type: ignore[no-any-return]


def _cancel(shop: Stack, order_id: str, authorization: str | None = None) -> Any:
    headers = {"Authorization": authorization} if authorization is not None else {}
    return shop.client.post(f"/api/orders/{order_id}/cancel", headers=headers)


def _checkout_of(shop: Stack) -> Checkout:
    return shop.app.extensions["ordertasks"]["checkout"]  # type: ignore[no-any-return]


def _tasks_of(shop: Stack, order_id: str) -> list[str]:
    return [t.name for t in shop.tasks() if f"-{order_id}-" in t.name]


def _untouched(shop: Stack, order_id: str) -> None:
    """Still paid, nothing refunded, every task still waiting in Cloud Tasks."""
    record = shop.store.orders.get_order(order_id)
    assert record is not None and record.status == "paid"
    assert shop.gateway.refunds == []   # type: ignore[attr-defined]
    assert shop.gateway.ledger.get_payment(order_id).state == "succeeded"  # type: ignore[union-attr]
    assert len(_tasks_of(shop, order_id)) == len(shop.catalog.kinds)


def test_an_anonymous_cancel_is_401_saying_how_to_authenticate(shop: Stack) -> None:
    """Attack: knowing an order id (it is in every link and email), cancel it with no credential."""
    order_id = _place(shop)["order_id"]
    for authorization in (None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc"):
        resp = _cancel(shop, order_id, authorization)
        assert resp.status_code == 401, (authorization, resp.get_data(as_text=True))
        error = resp.get_json()["error"]
        assert error["code"] == "cancel_token_required"
        assert "Authorization: Bearer <cancel_token>" in error["message"]
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    _untouched(shop, order_id)


def test_a_forged_token_is_403_and_refunds_nothing(shop: Stack) -> None:
    """Attack: present a made-up bearer token of the right shape."""
    order_id = _place(shop)["order_id"]
    for forged in (new_cancel_token(), "a", secrets.token_hex(32), cancel_digest("x")):
        resp = _cancel(shop, order_id, f"Bearer {forged}")
        assert resp.status_code == 403, resp.get_data(as_text=True)
        assert resp.get_json()["error"]["code"] == "invalid_cancel_token"
        assert "cancel_token the checkout returned" in resp.get_json()["error"]["message"]
    _untouched(shop, order_id)


def test_another_orders_token_cancels_only_that_order(shop: Stack) -> None:
    """Attack: a customer uses the token of their own order to cancel someone else's."""
    mine, theirs = _place(shop), _place(shop)
    resp = _cancel(shop, theirs["order_id"], f"Bearer {mine['cancel_token']}")
    assert resp.status_code == 403 and resp.get_json()["error"]["code"] == "invalid_cancel_token"
    _untouched(shop, theirs["order_id"])
    own = _cancel(shop, mine["order_id"], f"bearer {mine['cancel_token']}")   # the scheme is case-insensitive
    assert own.status_code == 200 and own.get_json()["refund_id"], own.get_data(as_text=True)
    _untouched_but_refunds(shop, theirs["order_id"], refunds=1)


def _untouched_but_refunds(shop: Stack, order_id: str, refunds: int) -> None:
    record = shop.store.orders.get_order(order_id)
    assert record is not None and record.status == "paid"
    assert len(shop.gateway.refunds) == refunds   # type: ignore[attr-defined]
    assert len(_tasks_of(shop, order_id)) == len(shop.catalog.kinds)


def test_an_unknown_order_is_404_even_with_a_token(shop: Stack) -> None:
    token = _place(shop)["cancel_token"]
    resp = _cancel(shop, new_order_id(), f"Bearer {token}")
    assert resp.status_code == 404 and resp.get_json()["error"]["code"] == "order_not_found"


def test_an_order_the_shop_scheduled_itself_cannot_be_cancelled_through_the_api(shop: Stack) -> None:
    """Attack: guess an id the shop chose (library orders keep their own ids, e.g. A1001)."""
    _checkout_of(shop).tasks.schedule({"order_id": "A1001", **eur_order().model_dump(mode="json")})
    for authorization in (f"Bearer {new_cancel_token()}", "Bearer A1001"):
        resp = _cancel(shop, "A1001", authorization)
        assert resp.status_code == 403, resp.get_data(as_text=True)
    assert shop.store.orders.get_order("A1001").status == "paid"  # type: ignore[union-attr]


def test_with_customer_cancel_off_no_token_is_issued_and_every_cancel_is_403(tmp_path: Path,
                                                                             emulator: Emulator) -> None:  # noqa: F811
    """Attack: cancel through the API of a shop that turned customer cancellation off."""
    shop = _shop(tmp_path, emulator, payment={"customer_cancel": False})
    try:
        placed = _place(shop)
        assert "cancel_token" not in placed
        for authorization in (None, f"Bearer {new_cancel_token()}"):
            resp = _cancel(shop, placed["order_id"], authorization)
            assert resp.status_code == 403, resp.get_data(as_text=True)
            error = resp.get_json()["error"]
            assert error["code"] == "customer_cancel_disabled" and "ask the shop" in error["message"]
        _untouched(shop, placed["order_id"])
    finally:
        shop.enqueuer.close()
        shop.store.close()


def test_customer_cancel_is_on_locally_and_off_in_the_cloud_unless_set() -> None:
    assert Settings.from_env({}).customer_cancel is True
    assert Settings.from_env({"ORDERTASKS_BACKEND": "cloud"}).customer_cancel is False
    assert Settings.from_env({"ORDERTASKS_BACKEND": "cloud", "ORDERTASKS_CUSTOMER_CANCEL": "true"}).customer_cancel
    assert Settings.from_env({"ORDERTASKS_CUSTOMER_CANCEL": "off"}).customer_cancel is False
    with pytest.raises(ConfigurationError, match="ORDERTASKS_CUSTOMER_CANCEL"):
        Settings.from_env({"ORDERTASKS_CUSTOMER_CANCEL": "maybe"})


def _warehouse_notified(shop: Stack, order_id: str) -> None:
    """The warehouse notification runs through the handler's dispatch (a stand-in perform)."""
    dispatcher = build_dispatcher(shop.settings, stores=shop.store, effects={WAREHOUSE: lambda task, ctx: {"status": 200}})
    assert dispatcher.run(Delivery(encode(WAREHOUSE, order_id))).outcome is Outcome.DONE


def test_a_cancel_after_the_warehouse_was_notified_is_409_and_refunds_nothing(shop: Stack) -> None:
    """Attack: the goods are on their way; cancel anyway to get the money back too."""
    placed = _place(shop)
    order_id, token = placed["order_id"], placed["cancel_token"]
    _warehouse_notified(shop, order_id)
    resp = _cancel(shop, order_id, f"Bearer {token}")
    assert resp.status_code == 409, resp.get_data(as_text=True)
    error = resp.get_json()["error"]
    assert error["code"] == "already_fulfilled" and error["fulfilment"] == [WAREHOUSE]
    assert "contact the shop" in error["message"]
    record = shop.store.orders.get_order(order_id)
    assert record is not None and record.status == "paid" and shop.gateway.refunds == []  # type: ignore[attr-defined]
    assert len(_tasks_of(shop, order_id)) == len(shop.catalog.kinds)     # nothing cancelled either


def test_an_operator_forces_the_cancel_after_fulfilment_and_it_refunds_once(shop: Stack) -> None:
    placed = _place(shop)
    order_id = placed["order_id"]
    _warehouse_notified(shop, order_id)
    checkout = _checkout_of(shop)
    with pytest.raises(ApiError) as refused:             # trusted code without force: the same rule
        checkout.cancel(order_id)
    assert refused.value.code == "already_fulfilled"
    forced = checkout.cancel(order_id, force=True)
    assert forced["status"] == "cancelled" and forced["refund_id"]
    assert {t["kind"]: t["state"] for t in forced["tasks"]}[WAREHOUSE] == "done"
    again = checkout.cancel(order_id, force=True)          # an operator clicking twice
    assert again["refund_id"] == forced["refund_id"]
    assert shop.gateway.refunds == [shop.store.orders.get_order(order_id).charge_id]  # type: ignore[attr-defined,union-attr]
    view = shop.client.get(f"/api/orders/{order_id}").get_json()
    assert view["status"] == "cancelled"
    assert view["refund"] == {"refund_id": forced["refund_id"], "reason": "cancelled_by_operator"}
    customer = _cancel(shop, order_id, f"Bearer {placed['cancel_token']}")
    assert customer.status_code == 409 and customer.get_json()["error"]["code"] == "order_cancelled"
    assert len(shop.gateway.refunds) == 1   # type: ignore[attr-defined]


def test_a_cancel_while_the_warehouse_notification_runs_is_409(shop: Stack) -> None:
    """Attack: cancel at the very moment the warehouse is being told (a delivery holds the claim)."""
    placed = _place(shop)
    now = datetime.now(timezone.utc)
    shop.store.effects.claim_effect(placed["order_id"], WAREHOUSE, now, 120.0, 86400.0)
    resp = _cancel(shop, placed["order_id"], f"Bearer {placed['cancel_token']}")
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "already_fulfilled"
    _untouched(shop, placed["order_id"])


def test_the_customers_cancel_before_fulfilment_refunds_once_and_stops_the_warehouse(shop: Stack) -> None:
    placed = _place(shop)
    order_id, auth = placed["order_id"], f"Bearer {placed['cancel_token']}"
    resp = _cancel(shop, order_id, auth)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert {t["state"] for t in resp.get_json()["tasks"]} == {"cancelled"}
    assert _tasks_of(shop, order_id) == []
    dispatcher = build_dispatcher(shop.settings, stores=shop.store, effects={WAREHOUSE: lambda task, ctx: {}})
    assert dispatcher.run(Delivery(encode(WAREHOUSE, order_id))).outcome is Outcome.CANCELLED
    assert _cancel(shop, order_id, auth).status_code == 409
    assert len(shop.gateway.refunds) == 1   # type: ignore[attr-defined]
    view = shop.client.get(f"/api/orders/{order_id}").get_json()
    assert view["refund"]["reason"] == "cancelled_by_customer"


def test_a_client_chosen_order_id_is_refused_and_nothing_is_stored_or_charged(shop: Stack) -> None:
    """Attack: choose a guessable id (or someone else's) at checkout."""
    taken = _place(shop)["order_id"]
    for chosen in ("A1001", taken, "ord_aaaaaaaaaaaaaaaaaaaa"):
        resp = shop.client.post("/api/checkout", json=order_body(order_id=chosen))
        assert resp.status_code == 400, resp.get_data(as_text=True)
        [field] = resp.get_json()["error"]["fields"]
        assert field["field"] == "order_id" and "chosen by the checkout" in field["message"]
    assert [o.order_id for o in shop.store.orders.recent_orders(10)] == [taken]
    assert len(shop.gateway.charges()) == 1


def test_issued_order_ids_are_random() -> None:
    ids = [new_order_id() for _ in range(1000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"ord_[a-z2-7]{20}", i) for i in ids)
    assert ids != sorted(ids)
    # Random, not a counter: consecutive ids differ right away (a counter shares its prefix).
    assert sum(a[4] != b[4] for a, b in zip(ids, ids[1:])) > 900
    positions = [{i[n] for i in ids} for n in range(4, 24)]
    assert all(len(chars) >= 28 for chars in positions)     # every place takes (nearly) all 32 symbols


def test_the_checkout_issues_its_own_ids(shop: Stack) -> None:
    ids = [_place(shop)["order_id"] for _ in range(5)]
    assert len(set(ids)) == 5 and all(re.fullmatch(r"ord_[a-z2-7]{20}", i) for i in ids)


def _stored_bytes(shop: Stack) -> bytes:
    return b"".join(p.read_bytes() for p in shop.settings.store.sqlite_file.parent.glob("*.db*"))


def test_the_token_is_stored_only_as_its_digest_and_a_replay_rotates_it(shop: Stack) -> None:
    """Attack: read the store (a backup, an export) for tokens, or reuse an earlier answer's."""
    key = {"Idempotency-Key": "replay-1"}
    first = shop.client.post("/api/checkout", json=order_body(), headers=key).get_json()
    again = shop.client.post("/api/checkout", json=order_body(), headers=key).get_json()
    old, new = first["cancel_token"], again["cancel_token"]
    assert old != new and len(new) >= 40
    stored = _stored_bytes(shop)
    assert old.encode() not in stored and new.encode() not in stored
    assert cancel_digest(new).encode() in stored
    assert _cancel(shop, first["order_id"], f"Bearer {old}").status_code == 403
    assert _cancel(shop, first["order_id"], f"Bearer {new}").status_code == 200


def test_token_matching_refuses_what_was_not_issued() -> None:
    token = new_cancel_token()
    assert token_matches(token, cancel_digest(token))
    assert not token_matches(token, None) and not token_matches(token, "")
    assert not token_matches(token + "x", cancel_digest(token))
    assert not token_matches(cancel_digest(token), cancel_digest(token))


class TokensDown(MemoryLedger):
    """A ledger whose cancel-token writes fail as a store outage."""

    def set_cancel_digest(self, order_id: str, digest: str, issued_at: datetime) -> None:
        raise DependencyUnavailable("payment ledger unavailable (test)")


def test_a_ledger_outage_after_the_charge_answers_201_without_a_token(shop: Stack) -> None:
    """A paid order is never answered 503 (which invites a second order) for want of a token."""
    app = create_app(shop.settings, store=shop.store, enqueuer=shop.enqueuer, gateway=shop.gateway,
                     ledger=TokensDown())
    resp = app.test_client().post("/api/checkout", json=order_body())
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert "cancel_token" not in resp.get_json()
    assert len(shop.gateway.charges()) == 1
