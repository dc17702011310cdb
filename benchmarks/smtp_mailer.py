"""``smtp_mailer``: what reusing SMTP connections saves the handler per email.

    python -m benchmarks.smtp_mailer [--quick] [--repeats N]

``SmtpMailer`` sends the same message M times to the dev stack's SMTP sink
(``infra.mailsink.MailSink``, aiosmtpd writing ``.eml`` files, in a thread of this
process), one sender at a time, with connection reuse (the default) and with
``idle_seconds=0`` (a connection per message, the baseline), interleaved in each repeat.
Figures: CPU-ms per message in the sending thread (what the handler pays), CPU-ms per
message in the rest of the process (the sink), wall ms per message. Medians over repeats.

No target in the issue: the figures and their ratio are reported (``ratio``: sender CPU
with reuse / without).
"""

from __future__ import annotations

import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from benchmarks._common import free_port, median, parser, print_table, write_results

NAME = "smtp_mailer"
MODES = {"reuse": 20.0, "connection per message": 0.0}     # mode -> idle_seconds


def message(index: int) -> EmailMessage:
    """A confirmation-sized plain message."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "shop@example.com", "ada@example.com", f"Your order {index}"
    msg["Message-ID"] = f"<bench-{index}@example.com>"
    msg.set_content("Thank you for your order.\n" * 40)
    return msg


def measure(port: int, idle_seconds: float, count: int) -> dict[str, float]:
    """Send ``count`` messages; CPU of this thread, of the whole process, and wall time."""
    from ordertasks.handlers.backends.smtp import SmtpMailer

    mailer = SmtpMailer("127.0.0.1", port, timeout=10, idle_seconds=idle_seconds)
    messages = [message(i) for i in range(count)]
    thread0, process0, wall0 = time.thread_time(), time.process_time(), time.perf_counter()
    for msg in messages:
        mailer.send(msg)
    thread, process, wall = time.thread_time() - thread0, time.process_time() - process0, time.perf_counter() - wall0
    mailer.close()
    return {"sender_cpu_ms": thread * 1000 / count, "sink_cpu_ms": (process - thread) * 1000 / count,
            "wall_ms": wall * 1000 / count}


def main(argv: list[str] | None = None) -> int:
    """Measure both modes, print, write ``results/smtp_mailer.json``."""
    from ordertasks.infra.mailsink import MailSink

    args = parser(NAME, __doc__).parse_args(argv)
    repeats, count = args.repeats or (3 if args.quick else 5), 200 if args.quick else 1000
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="bench-smtp-") as name:
        sink = MailSink(port=free_port(), directory=Path(name)).start()
        try:
            measure(sink.controller.port, 20.0, 20)                     # warm-up
            for r in range(repeats):
                for mode, idle in MODES.items():
                    runs[mode].append(measure(sink.controller.port, idle, count))
                print(f"  repeat {r + 1}: {[(m, rs[-1]) for m, rs in runs.items()]}", flush=True)
        finally:
            sink.stop()
    return report(args, repeats, count, runs)


def report(args: Any, repeats: int, count: int, runs: dict[str, list[dict[str, float]]]) -> int:
    """Table, target, results file."""
    figures = {mode: {k: median(r[k] for r in rs) for k in rs[0]} for mode, rs in runs.items()}
    print_table(f"smtp_mailer: per message, median of {repeats} x {count}",
                [(mode, f["sender_cpu_ms"], f["sink_cpu_ms"], f["wall_ms"]) for mode, f in figures.items()],
                ("mode", "sender CPU ms", "sink CPU ms", "wall ms"))
    reuse, base = figures["reuse"], figures["connection per message"]
    ratio = reuse["sender_cpu_ms"] / base["sender_cpu_ms"]
    print(f"\nsender CPU with reuse / without: {ratio:.2f}; sink CPU: {reuse['sink_cpu_ms'] / base['sink_cpu_ms']:.2f}; "
          f"wall: {reuse['wall_ms'] / base['wall_ms']:.2f}")
    write_results(NAME, {"parameters": {"quick": args.quick, "repeats": repeats, "messages": count},
                         "figures": figures, "baseline": {"name": "connection per message", **base},
                         "ratio": ratio, "targets": []})
    return 0


if __name__ == "__main__":
    sys.exit(main())
