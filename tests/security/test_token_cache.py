"""The cache of verified tokens (``handlers/verified_tokens.py``) never answers for a token
that a full verification would refuse, and never holds a bearer token in the clear."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ordertasks.handlers.errors import Forbidden, Unauthenticated
from ordertasks.handlers.oidc import CertCache, TokenVerifier
from ordertasks.handlers.verified_tokens import VerifiedTokens, token_digest
from tests.functions.conftest import DISPATCHER
from tests.security.test_cert_fetch_storm import CertsEndpoint, FakeClock
from tests.support.issuer import RsaKey, TestIssuer

AUDIENCE = "https://handler.example/"
T0 = 1_900_000_000.0


@pytest.fixture
def issuer() -> Iterator[TestIssuer]:
    """Tokens signed by a test key (its certs server is not used: the fetch port is faked at its far end)."""
    minted = TestIssuer(audience=AUDIENCE, email=DISPATCHER)
    yield minted
    minted.stop()


@pytest.fixture
def wall() -> FakeClock:
    """The verifier's wall clock, moved by hand."""
    clock = FakeClock()
    clock.now = T0
    return clock


def verifier(issuer: TestIssuer, wall: FakeClock, **options: float) -> TokenVerifier:
    certs = CertCache("http://certs.invalid/", fetch=CertsEndpoint(issuer.key), monotonic=FakeClock())
    return TokenVerifier(certs, audiences=[AUDIENCE], allowed_emails=[DISPATCHER], now=wall, **options)


def token(issuer: TestIssuer, lifetime: int = 3600, **claims: object) -> str:
    return issuer.token(iat=int(T0), exp=int(T0) + lifetime, **claims)


def test_a_repeated_token_is_answered_from_the_cache(issuer: TestIssuer, wall: FakeClock) -> None:
    v, bearer = verifier(issuer, wall), f"Bearer {token(issuer)}"
    first = v.verify(bearer)
    wall.now += 10
    assert v.verify(bearer) == first
    assert (v.verified.hits, v.verified.misses) == (1, 1)


def test_a_cached_token_past_its_exp_is_rejected(issuer: TestIssuer, wall: FakeClock) -> None:
    v, bearer = verifier(issuer, wall, cache_max_age=3600), f"Bearer {token(issuer, lifetime=120)}"
    v.verify(bearer)
    wall.now = T0 + 120 + 1                   # past exp, inside the skew: the full check decides
    v.verify(bearer)
    assert v.verified.hits == 0
    wall.now = T0 + 120 + v.skew + 1          # past exp and the skew
    with pytest.raises(Unauthenticated, match="expired"):
        v.verify(bearer)
    assert v.verified.hits == 0 and len(v.verified) == 0


def test_an_entry_is_not_used_beyond_its_max_age(issuer: TestIssuer, wall: FakeClock) -> None:
    v, bearer = verifier(issuer, wall, cache_max_age=30), f"Bearer {token(issuer)}"
    v.verify(bearer)
    wall.now += 31
    v.verify(bearer)
    assert (v.verified.hits, v.verified.misses) == (0, 2)


def test_a_different_token_is_verified_in_full(issuer: TestIssuer, wall: FakeClock) -> None:
    """Same claims, same kid, another key's signature: a new digest, so a full check refuses it."""
    v = verifier(issuer, wall)
    v.verify(f"Bearer {token(issuer)}")
    forged = token(issuer, signer=RsaKey(issuer.key.kid).signer)
    with pytest.raises(Unauthenticated, match="signature"):
        v.verify(f"Bearer {forged}")
    assert v.verified.hits == 0


@pytest.mark.parametrize("claims, error", [
    ({"aud": "https://other.example/"}, Unauthenticated),
    ({"email": "intruder@evil.iam.gserviceaccount.com"}, Forbidden),
    ({"email_verified": False}, Forbidden),
], ids=["wrong_audience", "wrong_email", "unverified_email"])
def test_a_token_that_failed_verification_is_never_cached(issuer: TestIssuer, wall: FakeClock,
                                                          claims: dict[str, object], error: type[Exception]) -> None:
    """Validly signed but refused: refused again on every repeat, and never stored."""
    v, bearer = verifier(issuer, wall), f"Bearer {token(issuer, **claims)}"
    for _ in range(3):
        with pytest.raises(error):
            v.verify(bearer)
    assert len(v.verified) == 0 and v.verified.hits == 0 and v.verified.misses == 3


def test_the_cache_is_bounded_and_evicts_the_least_recently_used(issuer: TestIssuer, wall: FakeClock) -> None:
    v = verifier(issuer, wall, cache_size=3)
    bearers = [f"Bearer {token(issuer, jti=f'j{n}')}" for n in range(5)]
    for bearer in bearers:
        v.verify(bearer)
    assert len(v.verified) == 3
    v.verify(bearers[4])                       # held
    v.verify(bearers[0])                       # evicted: verified again
    assert (v.verified.hits, v.verified.misses) == (1, 6)
    assert len(v.verified) == 3


def test_the_cache_keys_tokens_by_digest_never_by_the_token(issuer: TestIssuer, wall: FakeClock) -> None:
    v, raw = verifier(issuer, wall), token(issuer)
    v.verify(f"Bearer {raw}")
    assert v.verified.keys() == [token_digest(raw)]
    assert all(raw.encode() not in key and len(key) == 32 for key in v.verified.keys())


def test_a_cache_of_size_zero_verifies_every_time(issuer: TestIssuer, wall: FakeClock) -> None:
    v, bearer = verifier(issuer, wall, cache_size=0), f"Bearer {token(issuer)}"
    v.verify(bearer)
    v.verify(bearer)
    assert (v.verified.hits, v.verified.misses, len(v.verified)) == (0, 2, 0)


def test_negative_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        VerifiedTokens(lambda: 0.0, max_entries=-1)
