"""Failed-task triage: ``ordertasks failed list|show|replay|resolve`` and the sweeper.

The failed-task log is the same over SQLite and Firestore. A replay enqueues the task again
under a fresh name (``…-r<N>``, due now) in the catalog's queue for its kind (never in a queue
the failed delivery's headers named) and sets the entry to ``replayed``; the handler's
claim on ``(order_id, kind)`` makes a replay of an effect that already happened a
duplicate, never a second effect. Operators in the Firestore console set ``status`` to
``replay_requested``; ``sweep`` (CLI or ``POST /internal/sweep``) replays those.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, TextIO

from ordertasks.handlers.contract import encode, parse_envelope
from ordertasks.handlers.errors import OrderTasksError, PermanentError
from ordertasks.handlers.ports import (FAILED_RETENTION_SECONDS, FAILED_STATUSES, LIVE_FAILED, Clock, FailedStatus,
                                      FailedTask, FailedTaskStore)
from ordertasks.producer.backend_flags import (CREDENTIALS_HINT, add_backend_flags, is_missing_credentials,
                                               reading_settings)
from ordertasks.producer.terminal import escape_controls, for_terminal, plain_help

REPLAYABLE = LIVE_FAILED    # what a replay without --force may take


class TriageError(OrderTasksError):
    """A triage request that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class ReplayResult:
    """One replay: the entry, the new task name and whether Cloud Tasks took it."""

    failed_id: str
    task_name: str
    status: str
    error: str | None = None


def replay_body(entry: FailedTask) -> bytes:
    """The task body to send again: a fresh reference to the entry's order and kind.

    A task rejected on arrival (its body never parsed) cannot be replayed as is.
    """
    if "raw" in entry.payload and "kind" not in entry.payload:
        raise TriageError(f"{entry.id} was rejected on arrival ({entry.error_type}: {entry.error}); "
                          f"its body is not a valid task, so a replay would fail again. Fix the producer, "
                          f"then `ordertasks failed resolve {entry.id} --note ...`")
    body = encode(entry.kind, entry.order_id)
    try:
        parse_envelope(body)
    except PermanentError as exc:
        raise TriageError(f"{entry.id} cannot be replayed: its payload is invalid ({exc})") from exc
    return body


class Triage:
    """List, show, replay and resolve failed tasks over any ``FailedTaskStore``."""

    def __init__(self, store: FailedTaskStore, enqueue_body: Callable[[FailedTask, bytes, int], Any],
                 clock: Clock, retention_seconds: float = FAILED_RETENTION_SECONDS) -> None:
        # enqueue_body(entry, body, replay_number) -> object with .status/.task_name/.error
        self.store = store
        self.enqueue_body = enqueue_body
        self.clock = clock
        self.retention_seconds = retention_seconds   # of a resolved entry (the catalog's [failed_tasks])

    def get(self, failed_id: str) -> FailedTask:
        """The entry or a ``TriageError`` that says how to find ids."""
        entry = self.store.get_failed(failed_id)
        if entry is None:
            raise TriageError(f"no failed task with id {failed_id!r}; ids look like ORDER_ID:KIND "
                              f"(see `ordertasks failed list`)")
        return entry

    def replay(self, failed_id: str, expect_status: str | None = None, force: bool = False) -> ReplayResult:
        """Re-enqueue one entry as ``…-r<N>`` and mark it ``replayed`` (compare-and-set)."""
        entry = self.get(failed_id)
        if entry.status not in REPLAYABLE and not force:
            raise TriageError(f"{failed_id} is {entry.status}; only open or replay_requested tasks are "
                              f"replayed (add --force to replay anyway)")
        body = replay_body(entry)
        claimed = self.store.update_failed(failed_id, FailedStatus.REPLAYED, self.clock.now(),
                                           expect_status=expect_status or entry.status, count_replay=True)
        if claimed is None:
            raise TriageError(f"{failed_id} changed while replaying (now {self.get(failed_id).status}); try again")
        try:
            result = self.enqueue_body(claimed, body, claimed.replays)
        except TriageError:
            # Nothing was enqueued (e.g. the handler's URL is unknown): undo the claim.
            self.store.update_failed(failed_id, entry.status, self.clock.now(), expect_status=FailedStatus.REPLAYED)
            raise
        if result.status not in ("created", "exists"):
            self.store.update_failed(failed_id, entry.status, self.clock.now(), expect_status=FailedStatus.REPLAYED)
            return ReplayResult(failed_id, result.task_name, "failed", result.error)
        return ReplayResult(failed_id, result.task_name, result.status)

    def sweep(self, limit: int = 500) -> list[ReplayResult]:
        """Replay every entry an operator marked ``replay_requested``."""
        results = []
        for entry in self.store.list_failed(status=FailedStatus.REPLAY_REQUESTED, limit=limit):
            try:
                results.append(self.replay(entry.id, expect_status=FailedStatus.REPLAY_REQUESTED))
            except TriageError as exc:
                results.append(ReplayResult(entry.id, "", "skipped", str(exc)))
        return results

    def resolve(self, failed_id: str, note: str, who: str) -> FailedTask:
        """Close an entry by hand with a note."""
        self.get(failed_id)
        updated = self.store.update_failed(failed_id, FailedStatus.RESOLVED, self.clock.now(), resolved_by=who,
                                           note=note, retention_seconds=self.retention_seconds)
        assert updated is not None  # the entry exists: checked above
        return updated


# --- presentation -------------------------------------------------------------------------


def age(since: datetime, now: datetime) -> str:
    """``3d``, ``5h``, ``12m`` or ``40s``."""
    seconds = max(0, int((now - since).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain text table, columns padded to their widest cell (control characters escaped)."""
    rows = [[escape_controls(cell) for cell in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def _short(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


MIN_WRAPPED = 30    # characters a line of a wrapped column keeps however narrow the terminal


def wrapped_table(headers: Sequence[str], rows: Sequence[Sequence[str]], column: int, width: int) -> str:
    """``table`` fitted to ``width`` characters by wrapping ``column`` onto continuation lines
    (never cutting it short); it keeps at least ``MIN_WRAPPED`` characters a line."""
    rows = [[escape_controls(cell) for cell in row] for row in rows]
    others = sum(max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers) if i != column)
    room = max(MIN_WRAPPED, width - others - 2 * (len(headers) - 1))
    lines_of = [textwrap.wrap(row[column], room, break_on_hyphens=False) or [""] for row in rows]
    laid_out: list[list[str]] = []
    for row, lines in zip(rows, lines_of):
        laid_out.append([*row[:column], lines[0], *row[column + 1:]])
        laid_out += [["" if i != column else line for i in range(len(headers))] for line in lines[1:]]
    return table(headers, laid_out)


def reason(entry: FailedTask) -> str:
    """The entry's full last error on one line: ``ErrorType: message``."""
    return " ".join(f"{entry.error_type}: {entry.error}".split())


def list_table(entries: Sequence[FailedTask], now: datetime, width: int | None = None) -> str:
    """``failed list`` output; with ``width`` (a terminal's) the LAST ERROR column wraps to fit,
    without it each entry is one line. The reason is never cut short."""
    headers = ("ID", "KIND", "ORDER", "ATTEMPTS", "STATUS", "LAST ERROR", "AGE")
    rows = [(e.id, e.kind, e.order_id, str(e.attempts), e.status, reason(e), age(e.last_failed_at, now))
            for e in entries]
    return table(headers, rows) if width is None else wrapped_table(headers, rows, headers.index("LAST ERROR"), width)


def terminal_width(out: TextIO) -> int | None:
    """The width of the terminal ``out`` writes to; ``None`` when it is a pipe or a file."""
    isatty = getattr(out, "isatty", None)
    return shutil.get_terminal_size().columns if isatty is not None and isatty() else None


def show_text(entry: FailedTask) -> str:
    """``failed show`` output: every field, then the attempt history."""
    fields = asdict(entry)
    history = fields.pop("history")
    payload = fields.pop("payload")
    width = max(len(k) for k in fields)
    lines = [f"{k.ljust(width)}  {escape_controls(v)}" for k, v in fields.items()]
    lines.append("payload:")
    lines += ["  " + line for line in json.dumps(payload, indent=2, sort_keys=True, default=str).splitlines()]
    lines.append(f"history ({len(history)} failures):")
    for h in history:
        lines.append(escape_controls(f"  - {h.get('failed_at', '')}  attempt {h.get('attempt', '?')}  "
                                     f"{h.get('error_type', '')}: {_short(str(h.get('error', '')), 100)}"))
    return "\n".join(lines)


# --- command line -------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    """``ordertasks failed`` options."""
    p = argparse.ArgumentParser(prog="ordertasks failed", description="triage the failed-task log")
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION", help="list, show, replay or resolve")
    ls = sub.add_parser("list", help="a table of failed tasks (open and replay_requested unless told)",
                        description="A table of failed tasks, most recently failed first: the open and "
                                    "replay_requested ones unless --status or --all says otherwise.")
    shown = ls.add_mutually_exclusive_group()
    shown.add_argument("--status", choices=FAILED_STATUSES, help="only entries in this status")
    shown.add_argument("--all", action="store_true", help="every entry, replayed and resolved ones too")
    ls.add_argument("--kind", help="only entries of this kind")
    ls.add_argument("--limit", type=int, default=100, help="at most this many entries (default 100)")
    show = sub.add_parser("show", help="every field and the attempt history")
    show.add_argument("id", help="the entry's id, ORDER_ID:KIND (see `ordertasks failed list`)")
    replay = sub.add_parser("replay", help="enqueue again with a fresh task name")
    replay.add_argument("ids", nargs="*", metavar="ID", help="entries to replay, ORDER_ID:KIND")
    replay.add_argument("--all-open", action="store_true", help="replay every open entry")
    replay.add_argument("--force", action="store_true", help="also replay replayed/resolved entries")
    resolve = sub.add_parser("resolve", help="close by hand")
    resolve.add_argument("id", help="the entry's id, ORDER_ID:KIND")
    resolve.add_argument("--note", required=True, help="why it is closed (kept on the entry)")
    resolve.add_argument("--by", default="cli", help="who closed it (default cli)")
    for command in (ls, show, replay, resolve):
        add_backend_flags(command, init=True)
    return p


def run(args: argparse.Namespace, triage: Triage, out: TextIO) -> int:
    """Execute a parsed ``failed`` command; print for people; return an exit status."""
    now = triage.clock.now()
    if args.action == "list":
        entries = listed(triage.store, args)
        shown = list_table(entries, now, terminal_width(out)) if entries else "no failed tasks match"
        print(for_terminal(shown), file=out)
        return 0
    if args.action == "show":
        print(for_terminal(show_text(triage.get(args.id))), file=out)
        return 0
    if args.action == "resolve":
        entry = triage.resolve(args.id, args.note, args.by)
        print(escape_controls(f"{entry.id} resolved by {entry.resolved_by}: {entry.note}"), file=out)
        return 0
    return _run_replay(args, triage, out)


def listed(store: FailedTaskStore, args: argparse.Namespace) -> list[FailedTask]:
    """What ``failed list`` shows: ``--status``'s entries, every entry with ``--all``, else the
    ones still needing an operator (open, replay_requested), most recently failed first."""
    if args.status or args.all:
        return store.list_failed(status=args.status, kind=args.kind, limit=args.limit)
    entries = [e for status in LIVE_FAILED for e in store.list_failed(status=status, kind=args.kind, limit=args.limit)]
    return sorted(entries, key=lambda e: (e.last_failed_at, e.id), reverse=True)[:args.limit]


def _run_replay(args: argparse.Namespace, triage: Triage, out: TextIO) -> int:
    ids = list(args.ids)
    if args.all_open:
        ids += [e.id for e in triage.store.list_failed(status=FailedStatus.OPEN, limit=10_000)]
    if not ids:
        raise TriageError("name failed task ids to replay, or pass --all-open")
    status = 0
    for failed_id in ids:
        try:
            result = triage.replay(failed_id, force=args.force)
        except TriageError as exc:
            print(escape_controls(f"{failed_id}: not replayed: {exc}"), file=out)
            status = 1
            continue
        detail = f" ({result.error})" if result.error else ""
        print(escape_controls(f"{failed_id}: {result.status} {result.task_name}{detail}"), file=out)
        status = status or (result.status == "failed")
    return int(status)


def build_triage(settings: Any, failed: FailedTaskStore | None = None) -> Triage:
    """A ``Triage`` over the configured failed-task store (or ``failed``) and Cloud Tasks client.

    Replays go to the deployed handler (``producer.replay_target``), in the catalog's queue
    for the kind: never to whatever handler URL the operator's environment happens to name,
    nor to a queue a delivery's headers named.
    """
    from ordertasks.producer import wiring
    from ordertasks.producer.replay_target import ReplayTargetUnknown, handler_target

    enqueuer = wiring.enqueuer(settings)

    def target() -> Any:
        try:
            return handler_target(settings, enqueuer.catalog)
        except ReplayTargetUnknown as exc:
            raise TriageError(str(exc)) from exc

    return triage_for(failed or wiring.build_stores(settings).failed, enqueuer, target)


def triage_for(store: FailedTaskStore, enqueuer: Any, target: Callable[[], Any] | None = None) -> Triage:
    """A ``Triage`` whose replays go through ``enqueuer`` (a ``producer.enqueue.Enqueuer``).

    A replay goes to the catalog's queue for the entry's kind, in the deployment's project
    and location: the entry's ``queue`` and ``task_name`` are shown to people, never used as
    a destination, because the handler took them from the delivery's headers.
    ``target()`` names the handler replays go to (default: the enqueuer's own settings,
    right for a deployed service such as the checkout's ``/internal/sweep``).
    """
    def enqueue(entry: FailedTask, body: bytes, replay: int) -> Any:
        if entry.kind not in enqueuer.catalog.kinds:
            raise TriageError(f"{entry.id} cannot be replayed: its kind {entry.kind[:80]!r} is not in the catalog "
                              f"({enqueuer.catalog.source}), so there is no queue to send it to; add the kind back, "
                              f"or `ordertasks failed resolve {entry.id} --note ...`")
        return enqueuer.replay_body(entry.order_id, entry.kind, body, replay, target=target() if target else None)

    return Triage(store, enqueue, enqueuer.clock, enqueuer.catalog.failed_retention_days * 86400.0)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """``ordertasks failed …``."""
    args = parser().parse_args(argv)
    out = out or sys.stdout
    settings = reading_settings(args, tasks_api=args.action == "replay")
    try:
        return run(args, build_triage(settings), out)
    except TriageError as exc:
        print(escape_controls(f"ordertasks failed: {exc}"), file=sys.stderr)
        return 1
    except OrderTasksError as exc:
        print(escape_controls(f"ordertasks failed: the store is unavailable: {exc}"), file=sys.stderr)
        return 1
    except Exception as exc:
        if is_missing_credentials(exc):
            print(f"ordertasks failed: {CREDENTIALS_HINT}", file=sys.stderr)
            return 1
        raise


def sweep_main(argv: Sequence[str] | None = None) -> int:
    """``ordertasks sweep``: replay entries marked ``replay_requested`` (e.g. in the console)."""
    p = argparse.ArgumentParser(prog="ordertasks sweep", description=plain_help(sweep_main.__doc__))
    add_backend_flags(p, init=True)
    args = p.parse_args(argv)
    settings = reading_settings(args, tasks_api=True)
    try:
        results = build_triage(settings).sweep()
    except Exception as exc:
        if is_missing_credentials(exc):
            print(f"ordertasks sweep: {CREDENTIALS_HINT}", file=sys.stderr)
            return 1
        raise
    for r in results:
        print(escape_controls(f"{r.failed_id}: {r.status} {r.task_name}{' (' + r.error + ')' if r.error else ''}"))
    print(f"swept {len(results)} replay request(s)")
    return 1 if any(r.status == "failed" for r in results) else 0
