"""A stand-in for the warehouse's notification API, for local development and tests.

``POST /notifications`` with an ``Idempotency-Key`` header records the notification once:
a repeated key answers ``409 already received`` (as the real API does). The mode decides
how it answers new notifications:

    ok        201 and record it
    flaky     every other new notification answers 503 (deterministic, so tests can count)
    down      503 for everything
    reject    422 "unknown SKU" for everything
    slow      sleeps ``slow_seconds`` before answering (a timeout past the dispatch deadline)
    redirect  ``redirect_status`` (307) to ``redirect_to``, recording nothing: a far end that
              tries to send the order elsewhere
    huge      201 and record it, with an answer of ``huge_bytes`` (128 MiB) streamed
    drip      201 and record it, the answer dripped one byte per ``drip_seconds`` (1 s)

The last three are hostile far ends for the handler's outbound client (no redirects, a cap on
the answer, one deadline per call); ``sent_bytes`` counts what the huge and drip answers got
onto the wire before the handler hung up.

``GET /notifications`` lists what was recorded (``?key=`` filters), ``POST /mode`` with
``{"mode": "ok"}`` switches mode at run time, ``GET /healthz`` answers 200. Each recorded
notification is appended to ``<dir>/warehouse.jsonl`` when a directory is given, so a
restart keeps the record.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from ordertasks.infra.threaded_server import ThreadedServer

MODES = ("ok", "flaky", "down", "reject", "slow", "redirect", "huge", "drip")
STREAMED = ("huge", "drip")
HUGE_CHUNK = b"x" * 65536


class WarehouseState:
    """Recorded notifications, request counts and the current mode (thread-safe)."""

    def __init__(self, mode: str = "ok", directory: Path | None = None, slow_seconds: float = 5.0) -> None:
        self.mode = mode
        self.slow_seconds = slow_seconds
        self.redirect_to = "http://127.0.0.1:9/elsewhere"
        self.redirect_status = 307
        self.huge_bytes = 128 * 1024 * 1024
        self.drip_seconds = 1.0
        self.sent_bytes = 0
        self.lock = threading.Lock()
        self.notifications: dict[str, dict[str, Any]] = {}
        self.requests = 0
        self.new_seen = 0
        self.log_path = directory / "warehouse.jsonl" if directory else None
        self._load()

    def _load(self) -> None:
        if self.log_path and self.log_path.exists():
            for line in self.log_path.read_text().splitlines():
                entry = json.loads(line)
                self.notifications[entry["key"]] = entry

    def receive(self, key: str, payload: Any) -> tuple[int, dict[str, Any]]:
        """Decide the answer to one notification and record it when accepted."""
        with self.lock:
            self.requests += 1
            if self.mode == "down":
                return 503, {"error": "warehouse is down"}
            if key in self.notifications:
                return 409, {"status": "already received", "id": self.notifications[key]["id"]}
            if self.mode == "reject":
                return 422, {"error": "unknown SKU in notification"}
            self.new_seen += 1
            if self.mode == "flaky" and self.new_seen % 2 == 1:
                return 503, {"error": "warehouse hiccup, try again"}
            return 201, self._record(key, payload)

    def _record(self, key: str, payload: Any) -> dict[str, Any]:
        entry = {"key": key, "id": f"wh-{len(self.notifications) + 1}", "payload": payload,
                 "received_at": time.time()}
        self.notifications[key] = entry
        if self.log_path:
            with self.log_path.open("a") as fh:
                fh.write(json.dumps(entry) + "\n")
        return {"status": "received", "id": entry["id"]}


def _make_handler(state: WarehouseState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            """Quiet: the handler logs every notification itself."""

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                return json.loads(raw or b"null")
            except ValueError:
                return None

        def do_GET(self) -> None:  # noqa: N802 - stdlib naming
            """List notifications or answer the health check."""
            if self.path.startswith("/healthz"):
                return self._send(200, {"ok": True, "mode": state.mode})
            with state.lock:
                items = list(state.notifications.values())
                body = {"mode": state.mode, "requests": state.requests, "notifications": items}
            self._send(200, body)

        def do_POST(self) -> None:  # noqa: N802 - stdlib naming
            """Receive a notification or switch mode."""
            payload = self._body()
            if self.path.startswith("/mode"):
                mode = (payload or {}).get("mode") if isinstance(payload, dict) else None
                if mode not in MODES:
                    return self._send(400, {"error": f"mode must be one of {', '.join(MODES)}"})
                state.mode = mode
                return self._send(200, {"mode": mode})
            key = self.headers.get("Idempotency-Key")
            if not key or payload is None:
                return self._send(400, {"error": "need a JSON body and an Idempotency-Key header"})
            if state.mode == "slow":
                time.sleep(state.slow_seconds)
            if state.mode == "redirect":
                return self._redirect()
            status, body = state.receive(key, payload)
            if state.mode in STREAMED and status < 300:
                return self._stream(status)
            self._send(status, body)

        def _redirect(self) -> None:
            self.send_response(state.redirect_status)
            self.send_header("Location", state.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _stream(self, status: int) -> None:
            """A 2xx whose answer is huge or dripped; ends quietly when the client hangs up."""
            size = state.huge_bytes if state.mode == "huge" else 64
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            try:
                self.wfile.flush()
                for piece in _pieces(state.mode, size, state.drip_seconds):
                    self.wfile.write(piece)
                    state.sent_bytes += len(piece)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    return Handler


def _pieces(mode: str, size: int, drip_seconds: float) -> Iterator[bytes]:
    """The answer's bytes as sent: 64 KiB at a time (huge), or one byte per ``drip_seconds`` (drip)."""
    if mode == "drip":
        for _ in range(size):
            time.sleep(drip_seconds)  # the far end is the slow one here: that is the attack
            yield b" "
        return
    for start in range(0, size, len(HUGE_CHUNK)):
        yield HUGE_CHUNK[: size - start]


class WarehouseStandIn(ThreadedServer):
    """The stand-in server on ``host:port``, run in a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8090, mode: str = "ok",
                 directory: Path | None = None, slow_seconds: float = 5.0) -> None:
        self.state = WarehouseState(mode, directory, slow_seconds)
        super().__init__(host, port, _make_handler(self.state))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m infra.warehouse_standin --port 8090 --mode ok --dir var/warehouse``."""
    parser = argparse.ArgumentParser(description="warehouse API stand-in")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--mode", choices=MODES, default="ok")
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--slow-seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    if args.dir:
        args.dir.mkdir(parents=True, exist_ok=True)
    standin = WarehouseStandIn(args.host, args.port, args.mode, args.dir, args.slow_seconds)
    print(f"warehouse stand-in listening on {standin.url} (mode {args.mode})", flush=True)
    try:
        standin.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        standin.server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
