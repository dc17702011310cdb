"""Issue 28, F11 and the cloud's address check: one parser of addresses (the resolver's view,
classified by ``ipaddress``) for the start-up check and for every outbound webhook call.

Every spelling the resolver reads as loopback, unspecified or link-local is caught at start in
the cloud; at call time, in the cloud configuration, the client refuses any address that is not
public (a name that resolves to loopback included) before it sends a byte, and connects to the
very address it checked. Locally, loopback stays allowed (the warehouse stand-in is on 127.0.0.1).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest

from ordertasks.handlers.addresses import AddressPolicy
from ordertasks.handlers.backends.http import HttpWebhookClient
from ordertasks.handlers.cloud_readiness import cloud_problems, is_loopback, local_kind
from ordertasks.handlers.errors import Rejected
from ordertasks.infra.config import DEFAULT_CATALOG, Settings
from tests.effects.conftest import Warehouse

CLOUD = {
    "ORDERTASKS_BACKEND": "cloud", "ORDERTASKS_PROJECT": "shop-prod",
    "ORDERTASKS_HANDLER_URL": "https://europe-west1-shop-prod.cloudfunctions.net/ordertasks-handler",
    "ORDERTASKS_SMTP_HOST": "smtp.relay.my-shop.com", "ORDERTASKS_SMTP_PORT": "587",
    "ORDERTASKS_SMTP_USERNAME": "apikey", "ORDERTASKS_SMTP_PASSWORD": "pw",
    "ORDERTASKS_MAIL_FROM": "My Shop <orders@my-shop.com>",
    "ORDERTASKS_WAREHOUSE_URL": "https://wms.my-shop.com/notifications",
}
# F11: spellings of loopback and "this host" that inet_aton/getaddrinfo accept, and the metadata server.
LOOPBACK_SPELLINGS = ["127.1", "2130706433", "0x7f000001", "0177.0.0.1", "[::ffff:127.0.0.1]", "0"]
METADATA = "169.254.169.254"
KEY = "A1001:notify_warehouse"


def cloud(**changes: str) -> Settings:
    return Settings.from_env({**CLOUD, **changes})


# --- at start, in the cloud -----------------------------------------------------------------------


@pytest.mark.parametrize("host", [*LOOPBACK_SPELLINGS, METADATA])
@pytest.mark.parametrize("variable, template", [("ORDERTASKS_WAREHOUSE_URL", "http://{}/notifications"),
                                                ("ORDERTASKS_HANDLER_URL", "http://{}:8081/"),
                                                ("ORDERTASKS_SMTP_HOST", "{}")])
def test_every_spelling_of_loopback_and_the_metadata_server_is_refused_at_start(
        host: str, variable: str, template: str) -> None:
    """Attack: ORDERTASKS_WAREHOUSE_URL=http://127.1/ (or 0x7f000001, 0, the metadata server)
    passed the cloud check, so every task posted to the handler's own host."""
    problems = cloud_problems(cloud(**{variable: template.format(host)}), "handler")
    assert [p.split(" ", 1)[0] for p in problems] == [variable], problems
    assert ("link-local" if host == METADATA else "loopback") in problems[0]


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
def test_is_loopback_reads_hosts_as_the_resolver_does(host: str) -> None:
    """Attack: a regular expression missed 127.1; the resolver does not."""
    assert is_loopback(host) and local_kind(host) in ("loopback", "unspecified")


def test_the_metadata_server_is_link_local_and_public_hosts_are_fine() -> None:
    """Attack: none; what is not loopback or link-local is not flagged at start."""
    assert local_kind(METADATA) == "link-local"
    assert local_kind("8.8.8.8") is None and local_kind("smtp.relay.my-shop.com") is None
    assert local_kind("10.0.0.5") is None        # an SMTP relay in the VPC is fine


def _catalog(tmp_path: Path, webhook: str) -> str:
    path = tmp_path / "tasks.toml"
    path.write_text(DEFAULT_CATALOG.read_text() + '\n[queues.q-crm]\n\n[kinds.sync_crm]\nqueue = "q-crm"\n'
                    'delay_seconds = 0\n[kinds.sync_crm.webhook]\n' + webhook)
    return str(path)


def test_a_webhook_written_as_a_private_address_needs_allow_private(tmp_path: Path) -> None:
    """Attack: a catalog edit points a webhook at 10.x; in the cloud it would be refused on every call."""
    refused = cloud(ORDERTASKS_CONFIG=_catalog(tmp_path, 'url = "http://10.8.0.5/hook?key=K-1"\n'))
    problems = cloud_problems(refused, "handler")
    assert len(problems) == 1 and "private address" in problems[0] and "allow_private" in problems[0]
    assert "K-1" not in problems[0]
    allowed = cloud(ORDERTASKS_CONFIG=_catalog(tmp_path, 'url = "http://10.8.0.5/hook"\nallow_private = true\n'))
    assert cloud_problems(allowed, "handler") == []


# --- at every call --------------------------------------------------------------------------------


def _urls(port: int) -> list[str]:
    return [f"http://{host}:{port}/v1/notifications" for host in [*LOOPBACK_SPELLINGS, "localhost"]]


@pytest.fixture
def far_end() -> Iterator[Warehouse]:
    """The programmable far end of ``tests/effects``, on 127.0.0.1."""
    warehouse = Warehouse()
    warehouse.thread.start()
    try:
        yield warehouse
    finally:
        warehouse.server.shutdown()
        warehouse.server.server_close()


@pytest.mark.parametrize("index", range(len(LOOPBACK_SPELLINGS) + 1))
def test_the_cloud_client_refuses_loopback_in_any_spelling_before_sending(far_end: Warehouse, index: int) -> None:
    """Attack: a webhook URL (or a DNS name, ``localhost``) that resolves to loopback makes the
    handler POST the order to a service on its own host."""
    url = _urls(far_end.server.server_address[1])[index]
    client = HttpWebhookClient(url, timeout=2, addresses=AddressPolicy.for_backend(cloud=True))
    with pytest.raises(Rejected, match=r"\((loopback|unspecified)\), which the handler does not call"):
        client.post(KEY, {"order_id": "A1001"})
    assert far_end.requests == []


@pytest.mark.parametrize("index", range(len(LOOPBACK_SPELLINGS) + 1))
def test_the_local_client_still_calls_loopback(far_end: Warehouse, index: int) -> None:
    """Attack: none; the local stack's warehouse stand-in listens on 127.0.0.1 and must stay reachable."""
    url = _urls(far_end.server.server_address[1])[index]
    local = HttpWebhookClient(url, timeout=2, addresses=AddressPolicy.for_backend(cloud=False))
    assert local.post(KEY, {"order_id": "A1001"})["status"] == 201
    assert len(far_end.requests) == 1


@pytest.mark.parametrize("host, kind", [(METADATA, "link-local"), ("10.0.0.1", "private"), ("[fd00::1]", "unique-local"),
                                        ("100.64.0.1", "non-public"), ("[::]", "unspecified")])
def test_the_cloud_client_refuses_internal_networks(host: str, kind: str) -> None:
    """Attack: a webhook aimed at the metadata server (or any internal network) reads credentials
    or reaches services the internet cannot."""
    client = HttpWebhookClient(f"http://{host}/computeMetadata/v1/", timeout=0.5,
                               addresses=AddressPolicy.for_backend(cloud=True))
    with pytest.raises(Rejected, match=rf"\({kind}\)"):
        client.post(KEY, {"order_id": "A1001"})


def test_allow_private_opens_private_networks_but_never_the_metadata_server() -> None:
    """Attack: ``allow_private = true`` for a VPC partner must not open 169.254.169.254 as well."""
    policy = AddressPolicy.for_backend(cloud=True, allow_private=True)
    assert [policy.refusal(ip_address(a)) for a in ("10.8.0.5", "192.168.1.2", "fd00::5", "100.64.0.1")] == [None] * 4
    assert [policy.refusal(ip_address(a)) for a in (METADATA, "127.0.0.1", "::1", "0.0.0.0")] == [
        "link-local", "loopback", "loopback", "unspecified"]
    with pytest.raises(Rejected, match="link-local"):
        HttpWebhookClient(f"http://{METADATA}/", timeout=0.3, addresses=policy).post(KEY, {"order_id": "A1001"})


def test_a_listed_network_is_allowed_in_the_cloud(far_end: Warehouse) -> None:
    """Attack: none; a catalog that lists a network explicitly reaches it."""
    policy = AddressPolicy.for_backend(cloud=True, allow_private=["127.0.0.0/8"])
    client = HttpWebhookClient(far_end.url, timeout=2, addresses=policy)
    assert client.post(KEY, {"order_id": "A1001"})["status"] == 201


def test_the_address_checked_is_the_address_connected_to(far_end: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    """Attack: DNS rebinding. The name answers an allowed address for the check and the metadata
    server for the connect; the client resolves once and connects to what it checked."""
    port = far_end.server.server_address[1]
    real = socket.getaddrinfo
    answers = iter(["127.0.0.1", METADATA, METADATA])
    asked: list[str] = []

    def rebinding(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "rebind.test":
            return real(host, *args, **kwargs)
        asked.append(host)
        return real(next(answers), *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)   # the system resolver, not our code
    # 127.0.0.0/8 stands in for the public address a rebinding name first answers.
    policy = AddressPolicy.for_backend(cloud=True, allow_private=["127.0.0.0/8"])
    client = HttpWebhookClient(f"http://rebind.test:{port}/v1/notifications", timeout=2, addresses=policy)
    assert client.post(KEY, {"order_id": "A1001"})["status"] == 201
    assert asked == ["rebind.test"], "the host was resolved again after the check"
    assert far_end.requests[0].headers["Host"] == f"rebind.test:{port}"


def test_the_handlers_own_wiring_refuses_loopback_in_the_cloud_only(far_end: Warehouse) -> None:
    """Attack: as above, with the clients the handler builds from its settings (wiring.build_webhooks)."""
    from ordertasks.handlers.registry import KindRegistry
    from ordertasks.handlers.wiring import build_webhooks

    url = f"http://localhost:{far_end.server.server_address[1]}/v1/notifications"
    local = Settings.from_env({"ORDERTASKS_WAREHOUSE_URL": url})
    in_cloud = cloud(ORDERTASKS_WAREHOUSE_URL=url)
    kinds = KindRegistry.from_catalog(local.catalog())
    assert build_webhooks(local, kinds)["notify_warehouse"].post(KEY, {"order_id": "A1001"})["status"] == 201
    with pytest.raises(Rejected, match=r"\(loopback\)"):
        build_webhooks(in_cloud, kinds)["notify_warehouse"].post(KEY, {"order_id": "A1001"})
    assert len(far_end.requests) == 1
