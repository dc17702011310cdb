"""GetCmekConfig / UpdateCmekConfig: one customer-managed key setting per location, stored
and returned, never used.

The emulator encrypts nothing: SQLite holds queues and tasks in the clear whatever the
config says.  What it does is what a client can observe: the config of a location that was
never set is ``{"name": "projects/P/locations/L/cmekConfig"}``; ``kmsKey`` must name a
Cloud KMS key (``projects/P/locations/L/keyRings/R/cryptoKeys/K``) in the same location, as
Cloud Tasks requires; an empty ``kmsKey`` turns CMEK off again.  ``updateMask`` may name
``kmsKey`` (or ``kms_key``) only.
"""

from __future__ import annotations

import re
from typing import Any

from ordertasks.infra.emulator import wire_scalars as ws
from ordertasks.infra.emulator.errors import RpcError, invalid
from ordertasks.infra.emulator.store import Op, Store

Json = dict[str, Any]
KMS_KEY = re.compile(r"^projects/[^/]+/locations/(?P<location>[^/]+)/keyRings/[^/]+/cryptoKeys/[^/]+$")
MASK_PATHS = ("kmsKey", "kms_key")


def put_config(location: str, kms_key: str) -> Op:
    """Store a location's key (an empty key is stored too: CMEK turned off)."""
    return ("INSERT OR REPLACE INTO cmek_configs (location, kms_key) VALUES (?, ?)", (location, kms_key))


def check_key(location: str, kms_key: str) -> None:
    """A key that names a Cloud KMS key in ``location`` (or nothing)."""
    if not kms_key:
        return
    match = KMS_KEY.match(kms_key)
    if match is None:
        raise invalid(f"cmekConfig.kmsKey: {kms_key[:200]!r} is not a Cloud KMS key name; use "
                      "projects/PROJECT_ID/locations/LOCATION_ID/keyRings/KEY_RING_ID/cryptoKeys/KEY_ID")
    wanted = location.rsplit("/", 1)[-1]
    if match.group("location") != wanted:
        raise invalid(f"cmekConfig.kmsKey: the key is in location {match.group('location')!r}; Cloud Tasks in "
                      f"{wanted!r} needs a key in {wanted!r}")


class CmekConfigs:
    """The configs of every location, in memory and written through to SQLite."""

    def __init__(self, store: Store, keys: dict[str, str] | None = None) -> None:
        self.store = store
        self.keys = dict(keys or {})

    def get(self, location: str) -> Json:
        """GetCmekConfig: the location's config (no ``kmsKey`` when none is set)."""
        return ws.compact({"name": f"{location}/cmekConfig", "kmsKey": self.keys.get(location, "")})

    async def update(self, location: str, body: Json, mask: list[str]) -> Json:
        """UpdateCmekConfig: set or clear the key; answers the new config."""
        unknown = [p for p in mask if p not in MASK_PATHS]
        if unknown:
            raise invalid(f"updateMask: {unknown[0]!r} cannot be updated; the only updatable field is kmsKey")
        kms_key = ws.string(body.get("kmsKey", body.get("kms_key", "")), "cmekConfig.kmsKey")
        check_key(location, kms_key)
        previous = self.keys.get(location)
        self.keys[location] = kms_key  # memory first: a cancelled caller's write still lands (it is queued)
        try:
            await self.store.write([put_config(location, kms_key)])
        except Exception as exc:
            self._restore(location, previous)
            raise RpcError("INTERNAL", f"could not store the CMEK config: {exc}") from exc
        return self.get(location)

    def _restore(self, location: str, previous: str | None) -> None:
        if previous is None:
            self.keys.pop(location, None)
        else:
            self.keys[location] = previous
