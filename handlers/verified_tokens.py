"""Remember tokens already verified, so a repeated token costs a hash instead of RS256.

Cloud Tasks does not mint a new ID token for every dispatch: Google's token service hands
out the same token for a service account and audience for a while, and our emulator reuses
one for five minutes (``infra/emulator/oidc.py``). A retry of a task, and every task of a
queue dispatched in that window, then carries a token the handler has already verified.

The rules, each one a reason a cached answer can never be wronger than a full check:

- **Only a token that passed every check is remembered** (signature, issuer, times,
  audience, verified allowed email). A token that failed anything is never stored, so it
  is verified in full — and refused — every time.
- **The key is a SHA-256 digest of the token**, never the token itself: a memory dump or a
  debug print of the cache holds no bearer credential. A different token (another
  signature, one changed claim) has a different digest and is verified in full.
- **An entry is used only before the token's ``exp``** (no skew allowance: the full check
  decides inside the skew) **and for at most ``max_age`` seconds** after it was stored, so
  a change of certificates (a revoked key) reaches a token within ``max_age``.
- **Bounded**: at most ``max_entries`` tokens, least recently used evicted first.

Nothing else needs invalidating: what a token proves is fixed in its signed claims, and
the verifier's audiences and allowed emails do not change while it runs.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

DEFAULT_MAX_ENTRIES = 4096
DEFAULT_MAX_AGE_SECONDS = 300.0


def token_digest(token: str) -> bytes:
    """The cache key of ``token``: its SHA-256 digest (32 bytes)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True)
class _Entry(Generic[T]):
    value: T
    usable_until: float     # min(exp, stored + max_age), on the verifier's wall clock


class VerifiedTokens(Generic[T]):
    """A bounded LRU map of token digest → what its verification returned (see module docstring).

    ``hits`` and ``misses`` count lookups, so a benchmark (or an operator) can see how often
    tokens repeat.
    """

    def __init__(self, now: Callable[[], float], max_entries: int = DEFAULT_MAX_ENTRIES,
                 max_age: float = DEFAULT_MAX_AGE_SECONDS) -> None:
        if max_entries < 0 or max_age < 0:
            raise ValueError("max_entries and max_age must not be negative")
        self._now = now
        self.max_entries = max_entries
        self.max_age = max_age
        self._entries: OrderedDict[bytes, _Entry[T]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> list[bytes]:
        """The digests held, least recently used first (for tests and diagnostics)."""
        with self._lock:
            return list(self._entries)

    def get(self, token: str) -> T | None:
        """What ``remember`` stored for ``token``, if still usable now; else ``None`` (a miss)."""
        key, now = token_digest(token), self._now()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and now < entry.usable_until:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry.value
            if entry is not None:
                del self._entries[key]      # past exp or max_age: never used again
            self.misses += 1
            return None

    def remember(self, token: str, value: T, exp: float) -> None:
        """Store ``value`` for a ``token`` that passed every check and expires at ``exp``."""
        now = self._now()
        usable_until = min(exp, now + self.max_age)
        if self.max_entries == 0 or usable_until <= now:
            return
        key = token_digest(token)
        with self._lock:
            self._entries[key] = _Entry(value, usable_until)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
