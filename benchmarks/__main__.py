"""``python -m benchmarks [--quick]`` (``make bench ARGS=--quick``): every benchmark in turn.

Each runs as its own process (``python -m benchmarks.<name>``), so one's servers and
threads never share an interpreter with the next; each writes ``results/<name>.json``.
The exit status is non-zero only when a benchmark failed to run, not when a target is
missed (targets are figures to report, see ``benchmarks/README.md``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

from benchmarks._common import RESULTS_DIR, print_table

BENCHMARKS = ("checkout_latency", "checkout_load", "emulator_dispatch", "emulator_timing", "handler_overhead",
              "end_to_end", "cloud_cost", "scale_simulation", "smtp_mailer", "cold_start", "tracing_overhead")


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks, then print every target."""
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small runs: all of them in under 5 minutes")
    p.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these")
    args = p.parse_args(argv)
    failed = []
    started = time.monotonic()
    for name in args.only or BENCHMARKS:
        print(f"\n##### {name}", flush=True)
        t0 = time.monotonic()
        code = subprocess.call([sys.executable, "-m", f"benchmarks.{name}", *(["--quick"] if args.quick else [])])
        print(f"##### {name}: {'ok' if code == 0 else f'FAILED ({code})'} in {time.monotonic() - t0:.0f}s", flush=True)
        if code:
            failed.append(name)
    summary(args.only or BENCHMARKS)
    print(f"\nall benchmarks: {time.monotonic() - started:.0f}s; failed: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


def summary(names: tuple[str, ...] | list[str]) -> None:
    """Every target of every results file, met or not."""
    rows = []
    for name in names:
        path = RESULTS_DIR / f"{name}.json"
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        for t in data.get("targets", []):
            rows.append((name, t["target"], f"{t['value']:g} {t['unit']}".strip(), f"{t['op']} {t['limit']:g}",
                         "met" if t["met"] else "NOT MET", baseline_text(t, data),
                         "quick" if data["parameters"].get("quick") else "full"))
    print_table("summary", rows, ("benchmark", "target", "value", "limit", "result", "same-run baseline", "run"))


def baseline_text(target: dict[str, Any], data: dict[str, Any]) -> str:
    """The baseline a target was measured against: its own, else the file's baseline name."""
    if target.get("baseline"):
        return str(target["baseline"])
    return str(data.get("baseline", {}).get("name", ""))


if __name__ == "__main__":
    sys.exit(main())
