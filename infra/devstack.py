"""``ordertasks dev``: the whole system on loopback, each part its own process.

    emulator   Cloud Tasks v2 emulator (gRPC + REST), queues from infra/tasks.toml   :8123
    handler    handle_task under functions-framework, OIDC verification on  :8081
    checkout   the checkout API                                            :8080
    smtp       aiosmtpd writing var/mail/*.eml                             :1025
    warehouse  the warehouse stand-in (--warehouse-mode)                   :8090
    console    the operator console (queues, orders, failed tasks)         :8088

State lives under ``--data-dir`` (default ``var/``), so a restart keeps it. An empty price
book is seeded with the demo catalogue (``producer/data/demo_products.csv``) first. Ctrl-C or
SIGTERM stops every child.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ordertasks.handlers.registry import KindRegistry
from ordertasks.handlers.settings import configured_catalog_path
from ordertasks.infra.config import REPO_ROOT, load_catalog
from ordertasks.functions.serve import worker_count
from ordertasks.producer.replay_target import write_stack_record


@dataclass
class Ports:
    """Where each part listens."""

    emulator: int = 8123
    handler: int = 8081
    checkout: int = 8080
    smtp: int = 1025
    warehouse: int = 8090
    console: int = 8088


@dataclass
class Child:
    """One part of the stack: how to start it and how to tell it is healthy."""

    name: str
    port: int
    argv: list[str]
    healthy: Callable[[], bool]
    process: subprocess.Popen[bytes] | None = None


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing is bound to ``host:port``."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def http_ok(url: str) -> Callable[[], bool]:
    """A health check: ``url`` answers 2xx."""
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=0.5) as resp:
                return 200 <= resp.status < 300
        except OSError:
            return False
    return check


def tcp_open(port: int) -> Callable[[], bool]:
    """A health check: something accepts connections on the port."""
    def check() -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.3)
            return sock.connect_ex(("127.0.0.1", port)) == 0
    return check


def child_env(args: argparse.Namespace) -> dict[str, str]:
    """The environment every child shares (settings travel as ORDERTASKS_* variables)."""
    p: Ports = args.ports
    env = dict(os.environ)
    env.update({
        "ORDERTASKS_BACKEND": "local",
        "ORDERTASKS_DATA_DIR": str(args.data_dir),
        "ORDERTASKS_CONFIG": str(args.config),
        "CLOUD_TASKS_EMULATOR_HOST": f"127.0.0.1:{p.emulator}",
        "ORDERTASKS_HANDLER_URL": f"http://127.0.0.1:{p.handler}/",
        # The audience of /internal/* tokens: the checkout's own URL on whatever port it got.
        "ORDERTASKS_CHECKOUT_URL": f"http://127.0.0.1:{p.checkout}/",
        "ORDERTASKS_SMTP_HOST": "127.0.0.1",
        "ORDERTASKS_SMTP_PORT": str(p.smtp),
        "ORDERTASKS_WAREHOUSE_URL": f"http://127.0.0.1:{p.warehouse}/notifications",
        "ORDERTASKS_DELAY_SCALE": str(args.delay_scale),
        "ORDERTASKS_OIDC_VERIFY": "true",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def children(args: argparse.Namespace) -> list[Child]:
    """The six parts, in start order (dependencies first)."""
    p: Ports = args.ports
    py, data = sys.executable, Path(args.data_dir)
    cli = [py, "-m", "cli"]
    return [
        Child("smtp", p.smtp, [py, "-m", "ordertasks.infra.mailsink", "--port", str(p.smtp), "--dir", str(data / "mail")],
              tcp_open(p.smtp)),
        Child("warehouse", p.warehouse, [py, "-m", "ordertasks.infra.warehouse_standin", "--port", str(p.warehouse),
              "--mode", args.warehouse_mode, "--dir", str(data / "warehouse")],
              http_ok(f"http://127.0.0.1:{p.warehouse}/healthz")),
        # Re-create window 0: a developer who deletes a queue gets it back from the catalog at the
        # next start instead of a 7-day FAILED_PRECONDITION (the emulator's default, like the cloud's).
        Child("emulator", p.emulator, cli + ["emulator", "--port", str(p.emulator), "--db", str(data / "tasks.db"),
              "--queues", str(args.config), "--queue-recreate-window", "0"],
              http_ok(f"http://127.0.0.1:{p.emulator}/healthz")),
        Child("handler", p.handler, cli + ["handler", "--port", str(p.handler), "--workers", str(args.handler_workers)],
              tcp_open(p.handler)),
        Child("checkout", p.checkout, cli + ["checkout", "--port", str(p.checkout)],
              http_ok(f"http://127.0.0.1:{p.checkout}/healthz")),
        Child("console", p.console, cli + ["console", "--port", str(p.console)],
              http_ok(f"http://127.0.0.1:{p.console}/healthz")),
    ]


DEFAULT_DATA_DIR = Path("var")
DEFAULT_CONFIG = REPO_ROOT / "infra" / "tasks.toml"


def second_terminal_exports(args: argparse.Namespace) -> list[str]:
    """The ``export`` lines a second terminal needs so the CLI talks to this stack, not the defaults."""
    p, d = args.ports, Ports()
    wanted = [
        (args.data_dir != DEFAULT_DATA_DIR.resolve(), "ORDERTASKS_DATA_DIR", str(args.data_dir)),
        (args.config.resolve() != DEFAULT_CONFIG, "ORDERTASKS_CONFIG", str(args.config.resolve())),
        (p.emulator != d.emulator, "CLOUD_TASKS_EMULATOR_HOST", f"127.0.0.1:{p.emulator}"),
        (p.handler != d.handler, "ORDERTASKS_HANDLER_URL", f"http://127.0.0.1:{p.handler}/"),
        (p.checkout != d.checkout, "ORDERTASKS_CHECKOUT_URL", f"http://127.0.0.1:{p.checkout}/"),
    ]
    return [f"export {name}={shlex.quote(value)}" for needed, name, value in wanted if needed]


def second_terminal(args: argparse.Namespace) -> str:
    """How to set up a second terminal: the venv, plus the exports for anything non-default."""
    activate = Path(sys.prefix) / "bin" / "activate"
    lines = [f"  . {shlex.quote(str(activate))}    # puts `ordertasks` on PATH"] if activate.exists() else []
    return "\n".join(lines + [f"  {line}" for line in second_terminal_exports(args)])


def banner(args: argparse.Namespace) -> str:
    """What a newcomer needs next: URLs, a checkout curl, and how to watch the queues."""
    p: Ports = args.ports
    cat = load_catalog(args.config)
    queue = next(iter(cat.queues))
    return f"""
ordertasks local stack is up (data in {args.data_dir}/, logs in {args.data_dir}/logs/)
  checkout API     http://127.0.0.1:{p.checkout}/api/checkout   (GET /api/orders/<id>)
  task handler     http://127.0.0.1:{p.handler}/               (OIDC verified)
  Cloud Tasks      http://127.0.0.1:{p.emulator}/v2/            (emulator)
  SMTP             127.0.0.1:{p.smtp} -> {args.data_dir}/mail/*.eml
  warehouse        http://127.0.0.1:{p.warehouse}/notifications  (mode: {args.warehouse_mode})
  console          http://127.0.0.1:{p.console}/                  (queues, orders, failed tasks)

In a second terminal:
{second_terminal(args)}

Place an order:
  curl -s -X POST http://127.0.0.1:{p.checkout}/api/checkout -H 'Content-Type: application/json' \\
    -d '{{"customer": {{"name": "Ada Lovelace", "email": "ada@example.com"}},
         "shipping_address": {{"name": "Ada Lovelace", "line1": "12 St James Sq", "city": "London",
                               "postal_code": "SW1Y 4JH", "country": "GB"}},
         "items": [{{"sku": "BOOK-1", "name": "Notes on the Engine", "quantity": 2, "unit_price": "19.50"}}],
         "currency": "GBP", "payment_token": "tok_visa"}}'

Products (the demo catalogue, seeded into an empty price book):
  ordertasks products list        ordertasks products import FILE.csv

Watch a queue:
  CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDTASKS=http://127.0.0.1:{p.emulator}/ CLOUDSDK_AUTH_DISABLE_CREDENTIALS=true \\
    gcloud tasks list --queue={queue} --location={cat.region} --project={cat.project}

Ctrl-C stops everything.
"""


def seed_demo_catalogue(env: dict[str, str]) -> None:
    """Import the demo products into an empty price book (a shop's own products are kept)."""
    from ordertasks.producer.products import DEMO_CATALOGUE

    argv = [sys.executable, "-m", "cli", "products", "import", "--if-empty", str(DEMO_CATALOGUE)]
    done = subprocess.run(argv, env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"ordertasks dev: seeding the demo price book failed: {done.stderr.strip()}")
    print(f"  {'products':<10} {done.stdout.strip()}", flush=True)


class Stack:
    """Starts the children, waits for health, stops them all on exit."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.children = children(args)
        self.log_dir = Path(args.data_dir) / "logs"

    def check_ports(self) -> None:
        """Fail early, naming the port and the part, when a port is taken."""
        for child in self.children:
            if not port_free(child.port):
                raise SystemExit(f"ordertasks dev: port {child.port} ({child.name}) is already in use; "
                                 f"stop what uses it or pass --{child.name}-port")

    def start(self) -> None:
        """Start each child and wait until it is healthy (dependencies first)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        p: Ports = self.args.ports
        # Replays from the CLI and the console go to this handler, whatever their shell says.
        write_stack_record(Path(self.args.data_dir), f"http://127.0.0.1:{p.handler}/", f"127.0.0.1:{p.emulator}",
                           f"http://127.0.0.1:{p.console}/")
        env = child_env(self.args)
        seed_demo_catalogue(env)
        for child in self.children:
            log = open(self.child_log(child), "ab")
            child.process = subprocess.Popen(child.argv, env=env, cwd=REPO_ROOT, stdout=log,
                                             stderr=subprocess.STDOUT, start_new_session=True)
            self._await(child)

    def _await(self, child: Child, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if child.process is not None and child.process.poll() is not None:
                raise SystemExit(f"ordertasks dev: {child.name} exited ({child.process.returncode}); "
                                 f"the end of {self.child_log(child)}:\n{self.log_end(child)}")
            if child.healthy():
                print(f"  {child.name:<10} ready on 127.0.0.1:{child.port}", flush=True)
                return
            time.sleep(0.1)
        raise SystemExit(f"ordertasks dev: {child.name} not healthy after {timeout:.0f}s; "
                         f"the end of {self.child_log(child)}:\n{self.log_end(child)}")

    def child_log(self, child: Child) -> Path:
        """Where a child's output goes."""
        return self.log_dir / f"{child.name}.log"

    def log_end(self, child: Child, lines: int = 20) -> str:
        """The last lines a child wrote: why it stopped, without opening another file."""
        text = self.child_log(child).read_text(encoding="utf-8", errors="replace")
        return "\n".join("    " + line for line in text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM every child (reverse order), SIGKILL stragglers."""
        for child in reversed(self.children):
            if child.process and child.process.poll() is None:
                os.killpg(child.process.pid, signal.SIGTERM)
        for child in reversed(self.children):
            if child.process:
                try:
                    child.process.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(child.process.pid, signal.SIGKILL)

    def watch(self) -> int:
        """Block until a signal or until a child dies; return the exit status."""
        while True:
            for child in self.children:
                if child.process and child.process.poll() is not None:
                    print(f"ordertasks dev: {child.name} exited ({child.process.returncode}); stopping",
                          file=sys.stderr)
                    return 1
            time.sleep(0.5)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options (every port and path overridable)."""
    parser = argparse.ArgumentParser(prog="ordertasks dev", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Ports()
    for name in ("emulator", "handler", "checkout", "smtp", "warehouse", "console"):
        parser.add_argument(f"--{name}-port", type=int, default=getattr(defaults, name))
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--config", type=Path, help="the task catalog (default: ORDERTASKS_CONFIG, else "
                        "infra/tasks.toml); every part of the stack reads this file")
    parser.add_argument("--warehouse-mode", choices=("ok", "flaky", "down", "reject", "slow"), default="ok")
    # One process per core: a single worker's GIL caps the handler at one core while the
    # other parts of the stack leave the second idle (benchmarks/README.md, end_to_end).
    parser.add_argument("--handler-workers", type=worker_count, default=os.cpu_count() or 1,
                        help="handler worker processes (default: one per CPU)")
    parser.add_argument("--delay-scale", type=float, default=1.0,
                        help="multiply the catalog's task delays (0 = run everything now)")
    args = parser.parse_args(argv)
    args.data_dir = args.data_dir.resolve()
    # Absolute: the parts run from the repository root, not from here.
    args.config = configured_catalog_path(args.config)
    args.ports = Ports(args.emulator_port, args.handler_port, args.checkout_port, args.smtp_port,
                       args.warehouse_port, args.console_port)
    return args


def _interrupt(signum: int, frame: object) -> None:
    # SIGTERM takes the same clean path as Ctrl-C.
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Start the stack, print the banner, run until Ctrl-C / SIGTERM."""
    args = parse(argv)
    KindRegistry.from_catalog(load_catalog(args.config))   # CatalogError: cli prints it, exit 2
    stack = Stack(args)
    stack.check_ports()
    # Installed explicitly: a shell that starts us in the background leaves SIGINT ignored.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        stack.start()
        print(banner(args), flush=True)
        return stack.watch()
    except KeyboardInterrupt:
        print("\nordertasks dev: stopping", flush=True)
        return 0
    finally:
        stack.stop()
