"""``ordertasks emulator``: start the local Cloud Tasks v2 emulator (gRPC and REST on one port).

Start-up: open the SQLite state, load or create the OIDC signing key, restore queues and
tasks, create/update the queues of ``--queues`` (the task catalog), start the dispatcher,
then listen and print one ``listening on`` line.  SIGTERM or Ctrl-C stops it cleanly; tasks
in flight stay stored and are delivered again after the next start.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import aiohttp
from aiohttp import web

from ordertasks.infra.emulator import api, grpc_service, oidc, store as db
from ordertasks.infra.emulator.api import build_app
from ordertasks.infra.emulator.dispatcher import DEFAULT_APP_ENGINE_HOST, Dispatcher
from ordertasks.infra.emulator.errors import RpcError
from ordertasks.infra.emulator.frontdoor import sniffer_factory
from ordertasks.infra.emulator.h2grpc import GrpcConnection
from ordertasks.infra.emulator.guard import HostGuard
from ordertasks.infra.emulator.service import DEFAULT_MAX_QUEUES, DEFAULT_MAX_TASKS, TasksService

TOMBSTONE_SWEEP_SECONDS = 60.0


QUEUE_RECREATE_WINDOW = 7 * 24 * 3600.0


def non_negative(text: str) -> float:
    """A number of seconds >= 0 (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")
    return value


def positive_count(text: str) -> int:
    """A whole number >= 1 (argparse type)."""
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def app_engine_url(text: str) -> str:
    """An http(s) base URL (argparse check)."""
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"expected an http:// or https:// URL, got {text!r}")
    return text


# ``--queues`` without a file: the catalog shipped with ordertasks (found inside an installed
# wheel as in a checkout), so a shop's service can run the emulator without copying it.
BUILTIN_CATALOG = "builtin"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line (see docs/emulator.md)."""
    p = argparse.ArgumentParser(prog="ordertasks emulator", description="Local Cloud Tasks v2 emulator (gRPC and REST on one port).")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8123, help="port to listen on (default 8123)")
    p.add_argument("--db", default="var/tasks.db", help="SQLite file holding queues, tasks and the signing key")
    p.add_argument("--queues", metavar="TOML", nargs="?", const=BUILTIN_CATALOG,
                   help="task catalog whose queues are created or updated at start "
                        "(--queues alone: ordertasks' built-in infra/tasks.toml)")
    p.add_argument("--project", help="project of the --queues queues (default: the catalog's)")
    p.add_argument("--location", help="location of the --queues queues (default: the catalog's region)")
    p.add_argument("--dedup-window", type=non_negative, default=3600.0, metavar="SECONDS",
                   help="how long a completed or deleted task name stays taken (default 3600)")
    p.add_argument("--queue-recreate-window", type=non_negative, default=QUEUE_RECREATE_WINDOW, metavar="SECONDS",
                   help="refuse re-creating a deleted queue for this long with FAILED_PRECONDITION, as Cloud Tasks "
                        "does (default 604800: 7 days; 0 allows it at once)")
    p.add_argument("--max-queues", type=positive_count, default=DEFAULT_MAX_QUEUES, metavar="N",
                   help=f"refuse creating queues beyond N with RESOURCE_EXHAUSTED (default {DEFAULT_MAX_QUEUES})")
    p.add_argument("--max-tasks", type=positive_count, default=DEFAULT_MAX_TASKS, metavar="N",
                   help=f"refuse creating tasks while N are held, with RESOURCE_EXHAUSTED (default {DEFAULT_MAX_TASKS})")
    p.add_argument("--app-engine-host", type=app_engine_url, default=DEFAULT_APP_ENGINE_HOST, metavar="URL",
                   help=f"where App Engine tasks are sent (default {DEFAULT_APP_ENGINE_HOST})")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="also answer API requests whose Host is NAME (loopback names and --host always are)")
    p.add_argument("--inject-latency-ms", type=float, default=0.0, metavar="N",
                   help="add N ms to every API call (models the network to the real service)")
    p.add_argument("--issuer", default="https://accounts.google.com", help="iss claim of minted OIDC tokens")
    p.add_argument("--quiet", action="store_true", help="no log line per dispatch attempt")
    p.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto",
                   help="event loop: uvloop when it is installed (auto, the default; ~20%% less CPU per call), "
                        "or asyncio's own")
    return p.parse_args(list(argv))


def catalog_queue_bodies(path: str, project: str | None, location: str | None) -> list[dict[str, Any]]:
    """The queues of the task catalog as Cloud Tasks queue JSON."""
    from ordertasks.infra.config import DEFAULT_CATALOG, load_catalog

    catalog = load_catalog(DEFAULT_CATALOG if path == BUILTIN_CATALOG else path)
    parent = f"projects/{project or catalog.project}/locations/{location or catalog.region}"
    return [{
        "name": f"{parent}/queues/{q.name}",
        "rateLimits": {"maxDispatchesPerSecond": q.max_dispatches_per_second, "maxBurstSize": q.max_burst_size,
                       "maxConcurrentDispatches": q.max_concurrent_dispatches},
        "retryConfig": {"maxAttempts": q.max_attempts, "minBackoff": f"{q.min_backoff_seconds}s",
                        "maxBackoff": f"{q.max_backoff_seconds}s", "maxDoublings": q.max_doublings,
                        "maxRetryDuration": f"{q.max_retry_duration_seconds}s"},
    } for q in catalog.queues.values()]


async def apply_catalog(service: TasksService, args: argparse.Namespace) -> None:
    """Create or update every queue named in ``--queues``."""
    for body in catalog_queue_bodies(args.queues, args.project, args.location):
        mask = ["rateLimits", "retryConfig"]
        await service.update_queue(body["name"], body, mask)


def load_minter(store: db.Store, snapshot: db.Snapshot, issuer: str) -> oidc.TokenMinter:
    """The signing key from the database, created on first start."""
    material = snapshot.meta.get(oidc.META_KEY)
    if material is None:
        material = oidc.new_key_material(time.time())
        store.write_now([db.put_meta(oidc.META_KEY, material)])
    return oidc.TokenMinter(material, issuer, time.time)


async def sweep_tombstones(service: TasksService) -> None:
    """Forget expired task names now and then."""
    while True:
        await asyncio.sleep(TOMBSTONE_SWEEP_SECONDS)
        service.drop_expired_tombstones()


async def serve(args: argparse.Namespace) -> int:
    """Run until SIGTERM/SIGINT."""
    loop = asyncio.get_running_loop()
    store = db.Store(args.db)
    snapshot = store.load(time.time())
    minter = load_minter(store, snapshot, args.issuer)
    service = TasksService(store, time.time, args.dedup_window, args.queue_recreate_window,
                           max_queues=args.max_queues, max_tasks=args.max_tasks)
    service.restore(snapshot)
    store.start(loop)
    if args.queues:
        await apply_catalog(service, args)
    # No pool-wide cap: maxConcurrentDispatches bounds each queue, and a shared cap would let
    # one queue with a slow target hold every connection and starve the others.
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, limit_per_host=0))
    dispatcher = Dispatcher(service, minter, session, time.time, app_engine_host=args.app_engine_host,
                            quiet=args.quiet)
    service.start_dispatching(dispatcher)
    app = build_app(service, minter, args.inject_latency_ms, HostGuard(args.host, args.allow_host),
                    in_flight=lambda: len(dispatcher.running))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    grpc_calls, grpc_connections = grpc_service.calls(service, args.inject_latency_ms), set[GrpcConnection]()
    listener = await loop.create_server(
        sniffer_factory(runner.server, lambda: GrpcConnection(grpc_calls, api.MAX_REQUEST_BYTES, grpc_connections)),
        args.host, args.port)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sweeper = loop.create_task(sweep_tombstones(service))
    print(f"ordertasks emulator listening on http://{args.host}:{args.port} (gRPC and REST)", flush=True)
    try:
        await stop.wait()
    finally:
        sweeper.cancel()
        listener.close()
        for connection in list(grpc_connections):
            connection.goaway()
        await runner.cleanup()
        await dispatcher.stop()
        await session.close()
        store.close()
    return 0


def event_loop_runner(choice: str) -> Callable[[Coroutine[Any, Any, int]], int]:
    """``asyncio.run`` or ``uvloop.run`` for ``--loop``; ImportError when uvloop is asked for
    by name and missing (``auto`` falls back to asyncio)."""
    if choice == "asyncio":
        return asyncio.run
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise
        return asyncio.run
    return uvloop.run  # type: ignore[no-any-return]


def main(argv: Sequence[str]) -> int:
    """Entry point of ``ordertasks emulator`` and ``python -m infra.emulator``."""
    args = parse_args(argv)
    try:
        runner = event_loop_runner(args.loop)
    except ImportError:
        print("ordertasks emulator: --loop uvloop: uvloop is not installed (pip install uvloop, "
              "or --loop asyncio)", file=sys.stderr)
        return 2
    try:
        return runner(serve(args))
    except RpcError as exc:
        print(f"ordertasks emulator: {args.queues}: {exc.message}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"ordertasks emulator: cannot start: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
