"""Measure the review's three figures against the real handler (``ordertasks handler``) on 127.0.0.1.

    python -m tests.security.measure_attacks            # from a checkout's root

1. certificates fetches caused by 100 tokens with unknown ``kid``s;
2. the handler's peak RSS (process tree) while three clients POST 200 MB each without a token;
3. p50 latency of deliveries with fresh legitimate tokens, alone and under a storm of 10 clients
   sending unknown-kid tokens.

Bounded: about 40 s and 600 MB over loopback. Not a test (nothing asserts); the figures are
quoted in ``docs/security.md``. Run it from an older checkout to get the "before" figures.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import requests

from tests.security.handler_process import handler_process
from tests.security.tokens import unknown_kid
from tests.support.issuer import TestIssuer

BODY = b'{"kind": "no_such_kind", "v": 1, "order_id": "ord_measure"}'
MB = 1024 * 1024


def tree_rss_mb(root: int) -> float:
    """Resident memory of ``root`` and all its descendants, in MB."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    family, changed = {root}, True
    while changed:
        grown = family | {pid for pid, parent in parents.items() if parent in family}
        changed, family = grown != family, grown
    total = 0
    for pid in family:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def deliver(port: int, token: str) -> tuple[int, float]:
    started = time.perf_counter()
    resp = requests.post(f"http://127.0.0.1:{port}/", data=BODY, timeout=60,
                         headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    return resp.status_code, (time.perf_counter() - started) * 1000


def fetches_per_100_unknown_kids(port: int, issuer: TestIssuer) -> int:
    deliver(port, issuer.token())                 # loads the certificates
    before = issuer.fetches
    for n in range(100):
        deliver(port, unknown_kid(issuer, n))
    return issuer.fetches - before


def huge_post(port: int, size: int, answers: list[str]) -> None:
    """POST ``size`` bytes without a token, 1 MB at a time; note what came back."""
    chunk = b"x" * MB
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
            sock.sendall(f"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {size}\r\n\r\n".encode())
            try:
                for _ in range(size // MB):
                    sock.sendall(chunk)
            except OSError:
                pass                               # the server answered and closed early
            answers.append(sock.recv(200).split(b"\r\n", 1)[0].decode(errors="replace"))
    except OSError as exc:
        answers.append(f"{type(exc).__name__}")


def rss_under_huge_posts(port: int, pid: int) -> tuple[float, float, list[str]]:
    baseline, peak, answers = tree_rss_mb(pid), 0.0, []
    clients = [threading.Thread(target=huge_post, args=(port, 200 * MB, answers)) for _ in range(3)]
    for client in clients:
        client.start()
    while any(c.is_alive() for c in clients):
        peak = max(peak, tree_rss_mb(pid))
        time.sleep(0.05)
    return baseline, peak, answers


def p50(port: int, tokens: list[str]) -> float:
    return statistics.median(deliver(port, token)[1] for token in tokens)


def p50_under_storm(port: int, issuer: TestIssuer, tokens: list[str], attackers: int = 10) -> float:
    stop = threading.Event()
    forged = [unknown_kid(issuer, n) for n in range(2000)]

    def attack(offset: int) -> None:
        session, n = requests.Session(), offset
        while not stop.is_set():
            session.post(f"http://127.0.0.1:{port}/", data=b"{}", timeout=60,
                         headers={"Authorization": f"Bearer {forged[n % len(forged)]}"})
            n += attackers
    threads = [threading.Thread(target=attack, args=(i,), daemon=True) for i in range(attackers)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)                                # let the storm build up
    try:
        return p50(port, tokens)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)


def main() -> None:
    """Print the three figures as JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        with handler_process(Path(tmp)) as (port, issuer, server):
            assert server.proc is not None
            figures: dict[str, object] = {"fetches_per_100_unknown_kids": fetches_per_100_unknown_kids(port, issuer)}
            quiet = [issuer.token(sub=f"q{n}") for n in range(50)]
            stormy = [issuer.token(sub=f"s{n}") for n in range(50)]
            figures["p50_ms_legit_alone"] = round(p50(port, quiet), 1)
            figures["p50_ms_legit_under_kid_storm"] = round(p50_under_storm(port, issuer, stormy), 1)
            baseline, peak, answers = rss_under_huge_posts(port, server.proc.pid)
            figures.update({"rss_mb_before_posts": round(baseline), "rss_mb_peak_three_200mb_posts": round(peak),
                            "answers_to_200mb_posts": answers})
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
