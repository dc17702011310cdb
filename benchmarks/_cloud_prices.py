"""List prices (USD) that ``cloud_cost`` prices an order with; sources and date in benchmarks/README.md.

Free tiers are left out: at a million orders they are a rounding error, and a shop's
other workloads may use them up. Keep this table and the README's in step.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

MILLION = Decimal(1_000_000)

PRICES: dict[str, Decimal] = {
    # Firestore Standard edition, multi-region nam5, per document (regional US locations: half).
    "firestore_read": Decimal("0.06") / 100_000,
    "firestore_write": Decimal("0.18") / 100_000,
    "firestore_delete": Decimal("0.02") / 100_000,
    # Cloud Tasks: per billable operation (an API call or a push delivery attempt, per 32 KiB).
    "tasks_operation": Decimal("0.40") / MILLION,
    # Cloud Run functions / Cloud Run, request-based billing, Tier 1 region.
    "run_request": Decimal("0.40") / MILLION,
    "run_vcpu_second": Decimal("0.000024"),
    "run_gib_second": Decimal("0.0000025"),
}
MEMORY_GIB = Decimal("0.5")     # the handler's and the checkout's memory setting assumed for GiB-seconds


def _dec(value: float) -> Decimal:
    return Decimal(repr(value))


def _firestore(part: dict[str, Any]) -> Decimal:
    reads = _dec(part["read"] + part["read_missing"])
    return (reads * PRICES["firestore_read"] + _dec(part["write"]) * PRICES["firestore_write"]
            + _dec(part["delete"]) * PRICES["firestore_delete"])


def _compute(part: dict[str, Any], requests: float) -> Decimal:
    """Requests plus measured CPU-seconds as vCPU-seconds and GiB-seconds: a lower bound."""
    seconds = _dec(part["cpu_ms"]) / 1000
    return (_dec(requests) * PRICES["run_request"] + seconds * PRICES["run_vcpu_second"]
            + seconds * MEMORY_GIB * PRICES["run_gib_second"])


def cost_per_million(fig: dict[str, Any]) -> dict[str, Decimal]:
    """USD per million orders, by part, from one mode's per-order figures (see ``cloud_cost``)."""
    checkout, handler = fig["checkout"], fig["handler"]
    tasks_ops = _dec(checkout["tasks_calls"] + handler["tasks_calls"] + handler["invocations"])
    parts = {
        "firestore, checkout": _firestore(checkout),
        "firestore, handler": _firestore(handler),
        "cloud tasks (creates + deliveries)": tasks_ops * PRICES["tasks_operation"],
        "handler function (requests + CPU)": _compute(handler, handler["invocations"]),
        "checkout service (request + CPU)": _compute(checkout, 1.0),
    }
    per_million = {name: (usd * MILLION).quantize(Decimal("0.01")) for name, usd in parts.items()}
    per_million["total"] = sum(per_million.values(), Decimal("0"))
    return per_million
