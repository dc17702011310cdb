"""A tiny loyalty API on loopback, for the example and its test: it records what it receives.

    python examples/loyalty/loyalty_api.py --port 8095

``POST /points`` and ``POST /crm`` store the JSON body by ``Idempotency-Key`` (a repeat
answers 409, as a real API with idempotency keys would); ``GET /received`` lists every
request; ``POST /mode`` with ``{"mode": "ok" | "reject" | "down"}`` makes it answer 201,
422 or 503.
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

STATUS = {"ok": 201, "reject": 422, "down": 503}


class LoyaltyApi:
    """The server and what it has seen."""

    def __init__(self, port: int) -> None:
        self.received: list[dict[str, Any]] = []
        self.keys: set[tuple[str, str]] = set()
        self.mode = "ok"
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                with api.lock:
                    self._answer(200, {"received": api.received, "mode": api.mode})

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if self.path == "/mode":
                    api.mode = body["mode"]
                    return self._answer(200, {"mode": api.mode})
                self._answer(*api.record(self.path, dict(self.headers.items()), body))

            def _answer(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass
        return Handler

    def record(self, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, Any]]:
        """Store one request; 409 for a key seen before on this path."""
        with self.lock:
            self.received.append({"path": path, "headers": headers, "body": body, "mode": self.mode})
            if self.mode != "ok":
                return STATUS[self.mode], {"error": self.mode}
            key = (path, headers.get("Idempotency-Key", ""))
            if key in self.keys:
                return 409, {"error": "already received"}
            self.keys.add(key)
            return 201, {"id": f"L{len(self.keys)}"}

    def serve(self) -> "LoyaltyApi":
        """Serve in a background thread."""
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8095)
    LoyaltyApi(parser.parse_args().port).server.serve_forever()
