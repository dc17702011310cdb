"""A no-op HTTP target for dispatch benchmarks, in its own process so it never shares a
core's GIL with the emulator or the driver.

    python -m benchmarks._receiver --port P

Any ``POST`` answers 200 at once and records (arrival time, ``X-CloudTasks-TaskETA``).
``GET /_stats`` returns ``{"count": n}``; ``GET /_stats?arrivals=1`` adds every
``[arrival, eta]``; ``POST /_reset`` forgets them.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.request
from pathlib import Path

from aiohttp import web

from benchmarks._common import Proc, free_port, http_ok, python_module

ETA_HEADER = "X-CloudTasks-TaskETA"


def build_app() -> web.Application:
    """The receiver app; arrivals live in the app state."""
    arrivals: list[tuple[float, float | None]] = []

    async def deliver(request: web.Request) -> web.Response:
        now = time.time()  # before reading the body: arrival as close to the socket as we can
        await request.read()
        eta = request.headers.get(ETA_HEADER)
        arrivals.append((now, float(eta) if eta else None))
        return web.Response()

    async def stats(request: web.Request) -> web.Response:
        body: dict[str, object] = {"count": len(arrivals)}
        if request.query.get("arrivals"):
            body["arrivals"] = arrivals
        return web.Response(text=json.dumps(body), content_type="application/json")

    async def reset(_request: web.Request) -> web.Response:
        arrivals.clear()
        return web.Response()

    app = web.Application(client_max_size=2 * 1024 * 1024)
    app.router.add_get("/_stats", stats)
    app.router.add_post("/_reset", reset)
    app.router.add_get("/healthz", stats)
    app.router.add_post("/{tail:.*}", deliver)
    return app


class Receiver:
    """The receiver subprocess and a small client for its stats."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/task"
        self.proc = Proc(python_module("benchmarks._receiver", "--port", str(self.port)), tmp / "receiver.log")

    def start(self) -> "Receiver":
        """Start and wait until it answers."""
        self.proc.start(lambda: http_ok(f"http://127.0.0.1:{self.port}/healthz"))
        return self

    def _get(self, query: str = "") -> dict[str, object]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_stats{query}", timeout=30) as resp:
            return json.loads(resp.read())

    def count(self) -> int:
        """Deliveries received so far."""
        return int(self._get()["count"])  # type: ignore[call-overload]

    def arrivals(self) -> list[tuple[float, float | None]]:
        """Every (arrival, ETA) so far, in arrival order."""
        return [(a, e) for a, e in self._get("?arrivals=1")["arrivals"]]  # type: ignore[attr-defined]

    def reset(self) -> None:
        """Forget the deliveries so far."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/_reset", data=b"", method="POST")
        urllib.request.urlopen(req, timeout=10).close()

    def stop(self) -> None:
        """Stop the process."""
        self.proc.stop()


def main() -> None:
    """Serve until killed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # A deep backlog: a dispatcher opening many connections at once must not see dropped SYNs.
    web.run_app(build_app(), host="127.0.0.1", port=args.port, access_log=None, print=None, backlog=2048)


if __name__ == "__main__":
    main()
