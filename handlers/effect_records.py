"""Where "done" is read back: the idempotency store, and a create-once kind's far end.

A create-once kind that declares ``done_at`` (the invoice object, the analytics fact) wrote
no idempotency record when its first attempt succeeded, until the ledger came (the far end's record was
the done mark); since then every attempt claims and marks done, but the effects recorded
before are still only at their far end. So everything that shows an effect's state — the
order view (``GET /api/orders/{id}``), ``OrderTasks.status``, the console's timeline and
counts, ``ordertasks stats`` — reads through ``RecordedEffects``: an ``EffectStore`` whose
reads also look at the far end of those kinds, and whose writes go to the idempotency store
unchanged. The handler itself reads the plain store (a far-end lookup per delivery would
cost a read for nothing: the far end's create precondition already decides).

Rules: a kind's record found at its far end makes it ``done``, whatever the idempotency
store says (``in_progress`` after a crash, ``cancelled`` by a cancel that lost the race with
the effect): the effect happened. Done counts are the far end's count (an aggregation for
facts, a listing for blobs); duplicates stay counted in the idempotency store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from ordertasks.handlers.kind import DoneRecord, FarEnds, Recorded
from ordertasks.handlers.ports import AttemptFailure, Claim, ClaimState, EffectRecord, EffectState, EffectStore

DONE = EffectState.DONE


def recorded_done(found: EffectRecord | None, order_id: str, kind: str, far: Recorded) -> EffectRecord:
    """The effect as ``done`` from its far-end record (attempts and duplicates kept from ``found``)."""
    if found is None:
        return EffectRecord(order_id, kind, DONE, 1, None, far.at, far.at, far.at, dict(far.result))
    return replace(found, state=DONE, lease_expires_at=None, result=found.result or dict(far.result))


class RecordedEffects:
    """An ``EffectStore`` that also reads create-once kinds' far ends (see the module docstring)."""

    def __init__(self, effects: EffectStore, records: Mapping[str, DoneRecord], ends: FarEnds) -> None:
        self.effects = effects
        self.records = dict(records)
        self.ends = ends

    def claim_effect(self, order_id: str, kind: str, now: datetime, lease_seconds: float,
                     ttl_seconds: float) -> Claim:
        """See ``EffectStore.claim_effect`` (the idempotency store's)."""
        return self.effects.claim_effect(order_id, kind, now, lease_seconds, ttl_seconds)

    def cancel_effect(self, order_id: str, kind: str, now: datetime, ttl_seconds: float) -> ClaimState:
        """See ``EffectStore.cancel_effect``; an effect already at its far end answers ``DONE``."""
        if kind in self.records and self.records[kind].find(order_id, self.ends) is not None:
            return ClaimState.DONE
        return self.effects.cancel_effect(order_id, kind, now, ttl_seconds)

    def complete_effect(self, order_id: str, kind: str, result: dict[str, Any], now: datetime, *,
                        duplicate: bool = False) -> None:
        """See ``EffectStore.complete_effect``."""
        self.effects.complete_effect(order_id, kind, result, now, duplicate=duplicate)

    def release_effect(self, order_id: str, kind: str, now: datetime, failure: AttemptFailure | None = None) -> None:
        """See ``EffectStore.release_effect``."""
        self.effects.release_effect(order_id, kind, now, failure)

    def get_effect(self, order_id: str, kind: str) -> EffectRecord | None:
        """The idempotency record, or the far end's record as ``done`` (which wins: it happened)."""
        found = self.effects.get_effect(order_id, kind)
        if kind not in self.records or (found is not None and found.state == DONE):
            return found
        far = self.records[kind].find(order_id, self.ends)
        return found if far is None else recorded_done(found, order_id, kind, far)

    def effect_counts(self) -> dict[str, dict[str, int]]:
        """See ``EffectStore.effect_counts``; far-end kinds count done at the far end."""
        counts = self.effects.effect_counts()
        for kind in self.records:
            entry = counts.setdefault(kind, {DONE: 0, EffectState.IN_PROGRESS: 0, "duplicates": 0})
            entry[DONE] = self._done(kind, None, entry.get(DONE, 0))
        return counts

    def count_effects(self, kind: str, state: str | None = None, updated_since: datetime | None = None) -> int:
        """See ``EffectStore.count_effects``; ``done`` of a far-end kind is counted at the far end."""
        if kind not in self.records or state not in (None, DONE):
            return self.effects.count_effects(kind, state, updated_since)
        stored_done = self.effects.count_effects(kind, DONE, updated_since)
        others = self.effects.count_effects(kind, None, updated_since) - stored_done if state is None else 0
        return others + self._done(kind, updated_since, stored_done)

    def _done(self, kind: str, since: datetime | None, stored_done: int) -> int:
        # Every done effect of the kind is at its far end; the store's done records (retries,
        # duplicates) are among them, so the larger count is the right one, also for records
        # written without a far end (data imported, or the far end emptied by hand).
        return max(self.records[kind].count(self.ends, since), stored_done)

    def duplicates_absorbed(self, kind: str) -> int:
        """See ``EffectStore.duplicates_absorbed`` (counted in the idempotency store)."""
        return self.effects.duplicates_absorbed(kind)
