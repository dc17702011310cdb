"""``ordertasks dev``: the system the catalog describes, on loopback, each part its own process.

    emulator   Cloud Tasks v2 emulator (gRPC + REST), queues from infra/tasks.toml   :8123
    handler    handle_task under functions-framework, OIDC verification on  :8081
    checkout   our checkout API, when the catalog has [checkout]           :8080
    smtp       aiosmtpd writing var/mail/*.eml                             :1025
    warehouse  the warehouse stand-in (--warehouse-mode), when a kind      :8090
               posts to ${ORDERTASKS_WAREHOUSE_URL} (notify_warehouse does)
    console    the operator console (queues, orders, failed tasks)         :8088
    traces     with --tracing: an OTLP/HTTP receiver keeping the last      :4318
               --keep-traces traces; every part exports its spans to it

``--checkout``/``--no-checkout`` and ``--warehouse``/``--no-warehouse`` override the catalog.
A part that does not run is not port-checked, not named to the others (no
``ORDERTASKS_CHECKOUT_URL`` / ``ORDERTASKS_WAREHOUSE_URL`` from here) and not in the banner;
without our checkout the banner shows how the shop's own code schedules an order instead.

State lives under ``--data-dir`` (default ``var/``), so a restart keeps it. When the checkout
runs, an empty price book (the checkout's) is seeded with the demo catalogue
(``producer/data/demo_products.csv``) first. Ctrl-C or SIGTERM stops every child.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ordertasks.handlers.config import ENV_REFERENCE, Catalog, WebhookConfig
from ordertasks.handlers.registry import KindRegistry
from ordertasks.handlers.settings import configured_catalog_path
from ordertasks.infra.config import REPO_ROOT, load_catalog
from ordertasks.functions.serve import worker_count
from ordertasks.producer.replay_target import write_stack_record
from ordertasks.producer.terminal import plain_help


@dataclass
class Ports:
    """Where each part listens."""

    emulator: int = 8123
    handler: int = 8081
    checkout: int = 8080
    smtp: int = 1025
    warehouse: int = 8090
    console: int = 8088
    traces: int = 4318


# Start order: dependencies first. The emulator, handler, SMTP sink and console serve every
# catalog; the other two only a catalog that uses them (``absent_parts``).
PARTS = ("traces", "smtp", "warehouse", "emulator", "handler", "checkout", "console")
WAREHOUSE_URL = "ORDERTASKS_WAREHOUSE_URL"
NOT_NEEDED = {
    "checkout": "the catalog has no [checkout] table (--checkout starts it)",
    "warehouse": f"no kind of the catalog posts to ${{{WAREHOUSE_URL}}} (--warehouse starts it)",
}


def posts_to_warehouse(target: WebhookConfig) -> bool:
    """True when a webhook target's URL is the warehouse stand-in's variable (``${ORDERTASKS_WAREHOUSE_URL}``,
    with or without a default): the built-in ``notify_warehouse`` unless the catalog points it elsewhere."""
    return any(ref.group(1) == WAREHOUSE_URL for ref in ENV_REFERENCE.finditer(target.url))


def needed_parts(catalog: Catalog, registry: KindRegistry) -> dict[str, bool]:
    """Whether the catalog uses each optional part: our checkout, the warehouse stand-in."""
    return {"checkout": catalog.checkout,
            "warehouse": any(posts_to_warehouse(target) for target in registry.webhooks.values())}


def absent_parts(flags: Mapping[str, bool | None], needed: Mapping[str, bool]) -> dict[str, str]:
    """The optional parts this stack leaves out, each with why: its ``--no-`` flag, or a catalog
    that does not use it (and no flag asking for it)."""
    absent: dict[str, str] = {}
    for name, need in needed.items():
        if flags[name] is False:
            absent[name] = f"--no-{name}"
        elif flags[name] is None and not need:
            absent[name] = NOT_NEEDED[name]
    return absent


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
    """The environment every child shares (settings travel as ORDERTASKS_* variables).

    An absent part is not named: without the stand-in, a kind posting to
    ``${ORDERTASKS_WAREHOUSE_URL}`` reaches what the developer's own shell says (``--no-warehouse``
    with a warehouse of their own), never a port nothing listens on."""
    p: Ports = args.ports
    env = dict(os.environ)
    env.update({
        "ORDERTASKS_BACKEND": "local",
        "ORDERTASKS_DATA_DIR": str(args.data_dir),
        "ORDERTASKS_CONFIG": str(args.config),
        "CLOUD_TASKS_EMULATOR_HOST": f"127.0.0.1:{p.emulator}",
        "ORDERTASKS_HANDLER_URL": f"http://127.0.0.1:{p.handler}/",
        "ORDERTASKS_SMTP_HOST": "127.0.0.1",
        "ORDERTASKS_SMTP_PORT": str(p.smtp),
        "ORDERTASKS_DELAY_SCALE": str(args.delay_scale),
        "ORDERTASKS_OIDC_VERIFY": "true",
        "PYTHONUNBUFFERED": "1",
        # The parts run from the package's directory: the shop's kind modules are found where
        # `ordertasks dev` was started, as they are by the command itself.
        "PYTHONPATH": os.pathsep.join(filter(None, (os.getcwd(), os.environ.get("PYTHONPATH")))),
    })
    if "checkout" in args.parts:
        # The audience of /internal/* tokens: the checkout's own URL on whatever port it got.
        env["ORDERTASKS_CHECKOUT_URL"] = f"http://127.0.0.1:{p.checkout}/"
    if "warehouse" in args.parts:
        env[WAREHOUSE_URL] = f"http://127.0.0.1:{p.warehouse}/notifications"
    if "traces" in args.parts:
        env.update(tracing_env(p.traces))
    return env


def tracing_env(port: int) -> dict[str, str]:
    """The standard OpenTelemetry variables that send every part's spans to the receiver on
    ``port`` (a batch every 200 ms, so a trace shows up at once), and where the console reads them."""
    return {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_BSP_SCHEDULE_DELAY": "200",
            "ORDERTASKS_TRACES_URL": f"http://127.0.0.1:{port}/"}


def children(args: argparse.Namespace) -> list[Child]:
    """The parts this stack runs (``args.parts``), in start order (dependencies first)."""
    return [child for child in every_child(args) if child.name in args.parts]


def every_child(args: argparse.Namespace) -> list[Child]:
    """Every part, in start order (``PARTS``)."""
    p: Ports = args.ports
    py, data = sys.executable, Path(args.data_dir)
    cli = [py, "-m", "cli"]
    return [
        Child("traces", p.traces, [py, "-m", "ordertasks.infra.trace_receiver", "--port", str(p.traces),
              "--keep", str(getattr(args, "keep_traces", 200))], http_ok(f"http://127.0.0.1:{p.traces}/healthz")),
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
        # --init: a first start's data directory has no store yet; the console creates it.
        Child("console", p.console, cli + ["console", "--port", str(p.console), "--init"],
              http_ok(f"http://127.0.0.1:{p.console}/healthz")),
    ]


DEFAULT_DATA_DIR = Path("var")
DEFAULT_CONFIG = REPO_ROOT / "infra" / "tasks.toml"


def second_terminal_exports(args: argparse.Namespace) -> list[str]:
    """The ``export`` lines a second terminal needs so the CLI talks to this stack, not the defaults."""
    p, d, checkout = args.ports, Ports(), "checkout" in args.parts
    wanted = [
        (args.data_dir != DEFAULT_DATA_DIR.resolve(), "ORDERTASKS_DATA_DIR", str(args.data_dir)),
        (args.config.resolve() != DEFAULT_CONFIG, "ORDERTASKS_CONFIG", str(args.config.resolve())),
        (p.emulator != d.emulator, "CLOUD_TASKS_EMULATOR_HOST", f"127.0.0.1:{p.emulator}"),
        (p.handler != d.handler, "ORDERTASKS_HANDLER_URL", f"http://127.0.0.1:{p.handler}/"),
        (checkout and p.checkout != d.checkout, "ORDERTASKS_CHECKOUT_URL", f"http://127.0.0.1:{p.checkout}/"),
        # Without our checkout, the shop's code in that terminal schedules the orders: as the stack would.
        (not checkout and args.delay_scale != 1.0, "ORDERTASKS_DELAY_SCALE", str(args.delay_scale)),
    ]
    return [f"export {name}={shlex.quote(value)}" for needed, name, value in wanted if needed]


def second_terminal(args: argparse.Namespace) -> str:
    """How to set up a second terminal: the venv, plus the exports for anything non-default."""
    activate = Path(sys.prefix) / "bin" / "activate"
    lines = [f"  . {shlex.quote(str(activate))}    # puts `ordertasks` on PATH"] if activate.exists() else []
    return "\n".join(lines + [f"  {line}" for line in second_terminal_exports(args)])


def part_lines(args: argparse.Namespace) -> list[str]:
    """One banner line per running part: where it listens and what it is."""
    p, data = args.ports, args.data_dir
    lines = {
        "checkout": f"  checkout API     http://127.0.0.1:{p.checkout}/api/checkout   (GET /api/orders/<id>)",
        "handler": f"  task handler     http://127.0.0.1:{p.handler}/               (OIDC verified)",
        "emulator": f"  Cloud Tasks      http://127.0.0.1:{p.emulator}/v2/            (emulator)",
        "smtp": f"  SMTP             127.0.0.1:{p.smtp} -> {data}/mail/*.eml",
        "warehouse": f"  warehouse        http://127.0.0.1:{p.warehouse}/notifications  (mode: {args.warehouse_mode})",
        "console": f"  console          http://127.0.0.1:{p.console}/                  (queues, orders, failed tasks)",
        "traces": f"  traces (OTLP)    http://127.0.0.1:{p.traces}/v1/traces  (each order's trace: its console page)",
    }
    return [line for name, line in lines.items() if name in args.parts]


def place_an_order(args: argparse.Namespace) -> str:
    """How to put an order in: a curl to our checkout, or the library call a shop's own checkout makes."""
    if "checkout" not in args.parts:
        return """Schedule an order from your shop's own code (the order's fields: docs/library.md):
  from ordertasks import OrderTasks
  with OrderTasks.from_env() as tasks:     # in the second terminal's environment
      tasks.schedule(order)                # a paid order: one task per kind of the catalog
"""
    return f"""Place an order:
  curl -s -X POST http://127.0.0.1:{args.ports.checkout}/api/checkout -H 'Content-Type: application/json' \\
    -d '{{"customer": {{"name": "Ada Lovelace", "email": "ada@example.com"}},
         "shipping_address": {{"name": "Ada Lovelace", "line1": "12 St James Sq", "city": "London",
                               "postal_code": "SW1Y 4JH", "country": "GB"}},
         "items": [{{"sku": "BOOK-1", "name": "Notes on the Engine", "quantity": 2, "unit_price": "19.50"}}],
         "currency": "GBP", "payment_token": "tok_visa"}}'

Products (the demo catalogue, seeded into an empty price book):
  ordertasks products list        ordertasks products import FILE.csv
"""


def banner(args: argparse.Namespace) -> str:
    """What a newcomer needs next: the running parts' URLs, how to put an order in, and how to
    watch the queues (nothing about a part that does not run)."""
    p: Ports = args.ports
    cat = load_catalog(args.config)
    queue = next(iter(cat.queues))
    parts = "\n".join(part_lines(args))
    return f"""
ordertasks local stack is up (data in {args.data_dir}/, logs in {args.data_dir}/logs/)
{parts}

In a second terminal:
{second_terminal(args)}

{place_an_order(args)}
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


def taken_ports_message(taken: Sequence[Child]) -> str:
    """One line naming each taken port with its part, and the flags that move them."""
    ports = ", ".join(f"{child.port} ({child.name})" for child in taken)
    flags = " ".join(f"--{child.name}-port N" for child in taken)
    if len(taken) == 1:
        return f"ordertasks dev: port {ports} is already in use; stop what uses it or pass {flags}"
    return f"ordertasks dev: ports {ports} are already in use; stop what uses them or pass {flags}"


class Stack:
    """Starts the children, waits for health, stops them all on exit."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.children = children(args)
        self.log_dir = Path(args.data_dir) / "logs"

    def check_ports(self) -> None:
        """Fail early, naming every taken port and its part at once, so one fix round frees them all."""
        taken = [child for child in self.children if not port_free(child.port)]
        if taken:
            raise SystemExit(taken_ports_message(taken))

    def start(self) -> None:
        """Start each child and wait until it is healthy (dependencies first)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        p: Ports = self.args.ports
        # Replays from the CLI and the console go to this handler, whatever their shell says.
        write_stack_record(Path(self.args.data_dir), f"http://127.0.0.1:{p.handler}/", f"127.0.0.1:{p.emulator}",
                           f"http://127.0.0.1:{p.console}/")
        env = child_env(self.args)
        self.report_absent()
        if "checkout" in self.args.parts:      # the price book is the checkout's: nothing else reads it
            seed_demo_catalogue(env)
        for child in self.children:
            log = open(self.child_log(child), "ab")
            child.process = subprocess.Popen(child.argv, env=env, cwd=REPO_ROOT, stdout=log,
                                             stderr=subprocess.STDOUT, start_new_session=True)
            self._await(child)

    def report_absent(self) -> None:
        """One line per part left out, saying why (and that its port flag, if given, is unused)."""
        for name, why in self.args.absent.items():
            unused = f"; --{name}-port unused" if name in self.args.ports_given else ""
            print(f"  {name:<10} not started: {why}{unused}", flush=True)

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
    parser = argparse.ArgumentParser(prog="ordertasks dev", description=plain_help(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Ports()
    for name in ("emulator", "handler", "checkout", "smtp", "warehouse", "console", "traces"):
        parser.add_argument(f"--{name}-port", type=int, help=f"default {getattr(defaults, name)}")
    parser.add_argument("--checkout", action=argparse.BooleanOptionalAction,
                        help="run our checkout API (default: when the catalog has a [checkout] table)")
    parser.add_argument("--warehouse", action=argparse.BooleanOptionalAction,
                        help=f"run the warehouse stand-in (default: when a kind posts to ${{{WAREHOUSE_URL}}})")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help="where the stack keeps its state (default var/; created when missing)")
    parser.add_argument("--config", type=Path, help="the task catalog (default: ORDERTASKS_CONFIG, else "
                        "infra/tasks.toml); every part of the stack reads this file")
    parser.add_argument("--warehouse-mode", choices=("ok", "flaky", "down", "reject", "slow"), default="ok",
                        help="how the warehouse stand-in answers (default ok)")
    # One process per core: a single worker's GIL caps the handler at one core while the
    # other parts of the stack leave the second idle (benchmarks/README.md, end_to_end).
    parser.add_argument("--handler-workers", type=worker_count, default=os.cpu_count() or 1,
                        help="handler worker processes (default: one per CPU)")
    parser.add_argument("--delay-scale", type=float, default=1.0,
                        help="multiply the catalog's task delays (0 = run everything now)")
    parser.add_argument("--tracing", action="store_true",
                        help="trace every order (OpenTelemetry, needs ordertasks[tracing]) into a local OTLP "
                             "receiver; the console's order page shows the trace")
    parser.add_argument("--keep-traces", type=int, default=200, help="traces the receiver keeps (default 200)")
    args = parser.parse_args(argv)
    args.data_dir = args.data_dir.resolve()
    # Absolute: the parts run from the repository root, not from here.
    args.config = configured_catalog_path(args.config)
    given = {name: getattr(args, f"{name}_port") for name in PARTS}
    args.ports_given = {name for name, port in given.items() if port is not None}
    args.ports = Ports(**{name: port for name, port in given.items() if port is not None})
    choose_parts(args)
    return args


def choose_parts(args: argparse.Namespace) -> None:
    """Set ``args.parts`` (what runs, in start order) and ``args.absent`` (what does not, and why)
    from the catalog and the ``--[no-]checkout`` / ``--[no-]warehouse`` flags."""
    catalog = load_catalog(args.config)
    # CatalogError here (a kind that does not resolve too): cli prints it, exit 2.
    needed = needed_parts(catalog, KindRegistry.from_catalog(catalog))
    args.absent = absent_parts({"checkout": args.checkout, "warehouse": args.warehouse}, needed)
    tracing = getattr(args, "tracing", False)
    args.parts = tuple(name for name in PARTS if name not in args.absent and (name != "traces" or tracing))
    if tracing and importlib.util.find_spec("opentelemetry.sdk") is None:
        raise SystemExit("ordertasks dev --tracing: the OpenTelemetry packages are not installed: "
                         "pip install 'ordertasks[tracing]'")


def _interrupt(signum: int, frame: object) -> None:
    # SIGTERM takes the same clean path as Ctrl-C.
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Start the stack, print the banner, run until Ctrl-C / SIGTERM."""
    args = parse(argv)
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
