"""Item 2: unknown key ids cannot make the verifier refetch certificates (or stall legitimate tokens)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from ordertasks.handlers.errors import DependencyUnavailable, Unauthenticated
from ordertasks.handlers.oidc import CertCache, TokenVerifier
from tests.functions.conftest import DISPATCHER, HandlerStack
from tests.security.tokens import unknown_kid
from tests.support.issuer import RsaKey, TestIssuer
from tests.support.servers import wait_until

AUDIENCE = "https://handler.example/"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CertsEndpoint:
    """The far end of ``CertCache``'s fetch port: serves the current keys, counts fetches."""

    def __init__(self, *keys: RsaKey, max_age: float = 3600.0) -> None:
        self.keys = list(keys)
        self.max_age = max_age
        self.fetches = 0
        self.gate: threading.Event | None = None   # set → every fetch waits for it
        self.down = False                          # True → every fetch fails as a network error would

    def __call__(self, url: str) -> tuple[dict[str, Any], float]:
        self.fetches += 1
        if self.gate is not None:
            self.gate.wait(timeout=10)
        if self.down:
            raise DependencyUnavailable("cannot fetch OIDC certificates: connection refused", retry_after=30)
        return {key.kid: key.cert_pem for key in self.keys}, self.max_age


@pytest.fixture
def issuer() -> Iterator[TestIssuer]:
    """A token issuer (its own certs server is not used by these unit-level tests)."""
    minted = TestIssuer(audience=AUDIENCE, email=DISPATCHER)
    yield minted
    minted.stop()


def verifier_for(endpoint: CertsEndpoint, clock: FakeClock) -> TokenVerifier:
    return TokenVerifier(CertCache("http://certs.invalid/", fetch=endpoint, monotonic=clock),
                         audiences=[AUDIENCE], allowed_emails=[DISPATCHER])


def test_a_hundred_unknown_kids_cause_no_fetch_after_the_first(issuer: TestIssuer) -> None:
    """Attack: garbage tokens with fresh kids each forced a certificates refetch (164 tokens → 164 fetches)."""
    endpoint, clock = CertsEndpoint(issuer.key), FakeClock()
    verifier = verifier_for(endpoint, clock)
    verifier.verify(f"Bearer {issuer.token()}")
    for n in range(100):
        with pytest.raises(Unauthenticated, match="signature"):
            verifier.verify(f"Bearer {unknown_kid(issuer, n)}")
    assert endpoint.fetches == 1


def test_unknown_kids_refetch_at_most_once_per_30_seconds(issuer: TestIssuer) -> None:
    """Attack: a steady trickle of unknown kids still costs at most one fetch per 30 s."""
    endpoint, clock = CertsEndpoint(issuer.key), FakeClock()
    verifier = verifier_for(endpoint, clock)
    for n in range(300):                       # 300 tokens over 150 s
        clock.now += 0.5
        with pytest.raises(Unauthenticated):
            verifier.verify(f"Bearer {unknown_kid(issuer, n)}")
    assert endpoint.fetches <= 150 // 30 + 1


def test_a_rotated_key_is_picked_up_once_the_interval_has_passed(issuer: TestIssuer) -> None:
    """Attack: none; the fetch limit must not break key rotation for long."""
    endpoint, clock = CertsEndpoint(issuer.key), FakeClock()
    verifier = verifier_for(endpoint, clock)
    verifier.verify(f"Bearer {issuer.token()}")
    rotated = RsaKey("test-key-2")
    endpoint.keys.append(rotated)
    with pytest.raises(Unauthenticated):
        verifier.verify(f"Bearer {issuer.token(signer=rotated.signer)}")
    clock.now += 30
    assert verifier.verify(f"Bearer {issuer.token(signer=rotated.signer)}").email == DISPATCHER
    assert endpoint.fetches == 2


def test_certificates_are_refetched_when_their_max_age_runs_out(issuer: TestIssuer) -> None:
    """Attack: none; keys are trusted only for the Cache-Control max-age the issuer gave."""
    endpoint, clock = CertsEndpoint(issuer.key, max_age=600), FakeClock()
    verifier = verifier_for(endpoint, clock)
    for _ in range(5):
        verifier.verify(f"Bearer {issuer.token()}")
    clock.now += 599
    verifier.verify(f"Bearer {issuer.token(sub='2')}")
    assert endpoint.fetches == 1
    clock.now += 2
    verifier.verify(f"Bearer {issuer.token(sub='3')}")
    assert endpoint.fetches == 2


def test_no_lock_is_held_while_fetching(issuer: TestIssuer) -> None:
    """Attack: one slow certificates fetch under a global lock stalled every legitimate token."""
    endpoint, clock = CertsEndpoint(issuer.key, max_age=60), FakeClock()
    verifier = verifier_for(endpoint, clock)
    verifier.verify(f"Bearer {issuer.token()}")
    clock.now += 61                                 # stale: the next call refreshes
    endpoint.gate = threading.Event()
    slow = threading.Thread(target=lambda: verifier.verify(f"Bearer {issuer.token(sub='slow')}"), daemon=True)
    slow.start()
    wait_until(lambda: endpoint.fetches == 2, timeout=5, what="the refresh to start")
    answered = threading.Event()
    fast = threading.Thread(target=lambda: (verifier.verify(f"Bearer {issuer.token(sub='fast')}"), answered.set()),
                            daemon=True)
    fast.start()
    try:
        assert answered.wait(timeout=2), "a legitimate token waited for someone else's fetch"
    finally:
        endpoint.gate.set()
        slow.join(timeout=10)


def test_unknown_kids_over_http_cost_no_certificate_fetches(stack: HandlerStack) -> None:
    """Attack: the same storm against the real handler over HTTP, counting fetches at the certs server."""
    assert stack.deliver(b"{}", retry_count=0).status_code == 200    # loads the certificates once
    before = stack.issuer.fetches
    statuses = {stack.deliver(b"{}", token=unknown_kid(stack.issuer, n)).status_code for n in range(100)}
    assert statuses == {401}
    assert stack.issuer.fetches == before


def test_an_outage_after_the_first_fetch_keeps_verifying_with_the_keys_held(issuer: TestIssuer) -> None:
    """Attack: a certificates outage (or a blocked fetch) turning every delivery into a failure."""
    endpoint, clock = CertsEndpoint(issuer.key, max_age=60), FakeClock()
    verifier = verifier_for(endpoint, clock)
    verifier.verify(f"Bearer {issuer.token()}")
    endpoint.down = True
    for n in range(20):                            # 20 stale calls over 20 s: one failed attempt
        clock.now += 61 if n == 0 else 1
        assert verifier.verify(f"Bearer {issuer.token(sub=str(n))}").email == DISPATCHER
    assert endpoint.fetches == 2


def test_with_no_keys_an_outage_is_unavailable_and_retried_only_every_few_seconds(issuer: TestIssuer) -> None:
    """Attack: while the certificates are down, every request must not become another fetch."""
    endpoint, clock = CertsEndpoint(issuer.key), FakeClock()
    endpoint.down = True
    verifier = verifier_for(endpoint, clock)
    for _ in range(50):
        with pytest.raises(DependencyUnavailable) as raised:
            verifier.verify(f"Bearer {issuer.token()}")
        assert raised.value.retry_after
    assert endpoint.fetches == 1
    endpoint.down = False
    clock.now += 5
    assert verifier.verify(f"Bearer {issuer.token()}").email == DISPATCHER
    assert endpoint.fetches == 2


def test_a_fetch_that_raises_unexpectedly_does_not_wedge_the_cache(issuer: TestIssuer) -> None:
    """Attack: one odd failure leaving "a fetch in progress" forever, so no key is ever loaded."""
    endpoint, clock = CertsEndpoint(issuer.key), FakeClock()
    calls = {"n": 0}

    def flaky(url: str) -> tuple[dict[str, Any], float]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("resolver crashed")
        return endpoint(url)
    verifier = TokenVerifier(CertCache("http://certs.invalid/", fetch=flaky, monotonic=clock),
                             audiences=[AUDIENCE], allowed_emails=[DISPATCHER])
    with pytest.raises(RuntimeError):
        verifier.verify(f"Bearer {issuer.token()}")
    clock.now += 5
    assert verifier.verify(f"Bearer {issuer.token()}").email == DISPATCHER


def test_malformed_certificates_are_unavailable_not_a_crash(issuer: TestIssuer) -> None:
    """Attack: a certificates endpoint (or a proxy in front of it) answering garbage."""
    clock = FakeClock()
    verifier = TokenVerifier(CertCache("http://certs.invalid/", fetch=lambda url: ({"k": "not a pem"}, 60.0),
                                       monotonic=clock), audiences=[AUDIENCE], allowed_emails=[DISPATCHER])
    with pytest.raises(DependencyUnavailable, match="malformed"):
        verifier.verify(f"Bearer {issuer.token()}")


def test_concurrent_first_requests_wait_for_the_one_first_fetch(issuer: TestIssuer) -> None:
    """Attack: none (a self-inflicted outage): requests arriving during the first fetch were answered 503."""
    endpoint, clock = CertsEndpoint(issuer.key), FakeClock()
    endpoint.gate = threading.Event()
    verifier = verifier_for(endpoint, clock)
    results: list[object] = []

    def call(n: int) -> None:
        try:
            results.append(verifier.verify(f"Bearer {issuer.token(sub=str(n))}").email)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            results.append(exc)
    threads = [threading.Thread(target=call, args=(n,), daemon=True) for n in range(8)]
    for thread in threads:
        thread.start()
    wait_until(lambda: endpoint.fetches == 1, timeout=5, what="the first fetch to start")
    endpoint.gate.set()
    for thread in threads:
        thread.join(timeout=10)
    assert results == [DISPATCHER] * 8 and endpoint.fetches == 1
