"""``ordertasks deploy plan|apply|destroy``: argument parsing and the three commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from infra.config import DEFAULT_CATALOG, CatalogError, load_catalog

from infra.deploy._engine import DeployError, Output, Runner, apply, destroy, doomed, gcloud_runner
from infra.deploy._model import SECTIONS, Resource, render
from infra.deploy._plan import Target, build_plan, make_target

Ask = Callable[[str], str]


def _sections(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SECTIONS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown section {unknown[0]!r}; choose from {', '.join(SECTIONS)}")
    return names


def parser() -> argparse.ArgumentParser:
    """The ``deploy`` command line."""
    p = argparse.ArgumentParser(prog="ordertasks deploy", description="Plan, apply or destroy the Google Cloud "
                                "deployment described by infra/tasks.toml (run from the repository root).")
    p.add_argument("action", choices=("plan", "apply", "destroy"))
    p.add_argument("--project", help="Google Cloud project id (required for apply and destroy)")
    p.add_argument("--region", help="region of queues, function, bucket, Firestore and jobs")
    p.add_argument("--only", type=_sections, default=[], help="comma-separated sections: " + ",".join(SECTIONS))
    p.add_argument("--config", default=str(DEFAULT_CATALOG), help="the task catalog (default: infra/tasks.toml)")
    p.add_argument("--bucket", help="invoice bucket name (default: from the catalog, prefixed with --project)")
    p.add_argument("--handler-url", help="URL Cloud Tasks calls and the token audience (default: the "
                   "function's cloudfunctions.net URL)")
    p.add_argument("--checkout-url", help="base URL of the checkout service; needed for the scheduler jobs")
    p.add_argument("--yes", action="store_true", help="destroy without asking")
    p.add_argument("--delete-data", action="store_true", help="destroy also deletes the bucket and Firestore data")
    return p


def print_plan(t: Target, resources: Sequence[Resource], only: Sequence[str], out: Output) -> None:
    """Numbered gcloud commands, one section header each, plus what was left out and why."""
    out(f"# ordertasks deployment plan: project {t.project}, region {t.region}. Run from the repository root.")
    section = ""
    for number, resource in enumerate(resources, start=1):
        if resource.section != section:
            section = resource.section
            out("")
            out(f"# {section}")
        out(f"{number:>2}. {render(resource.create)}")
    for note in plan_notes(t, only):
        out("")
        out("# " + note)


def plan_notes(t: Target, only: Sequence[str]) -> list[str]:
    """Remarks printed under the plan: settings that cannot be set, sections left out."""
    return [note for note in (_burst_note(only), scheduler_note(t, only)) if note]


def _burst_note(only: Sequence[str]) -> str | None:
    if only and "queues" not in only:
        return None
    return ("maxBurstSize is not set: Cloud Tasks v2 derives it from maxDispatchesPerSecond "
            "(output only); gcloud has no flag for it.")


def scheduler_note(t: Target, only: Sequence[str]) -> str | None:
    """Why the scheduler jobs are missing, when they are."""
    if t.checkout_url or (only and "scheduler" not in only):
        return None
    return ("scheduler: skipped, pass --checkout-url https://<checkout service> "
            "(or [scheduler] checkout_url in tasks.toml) to add the reconcile and sweep jobs.")


def _confirm(resources: Sequence[Resource], args: argparse.Namespace, out: Output, ask: Ask) -> bool:
    out(f"This deletes from project {args.project}:")
    for resource in resources:
        out(f"  - {resource.label}")
    if not args.delete_data:
        out("Kept (pass --delete-data to delete): the invoice bucket and the Firestore data. APIs stay enabled.")
    out("Deleted queue names cannot be reused for about 7 days.")
    return args.yes or ask(f"Type the project id ({args.project}) to confirm: ").strip() == args.project


def run_action(args: argparse.Namespace, run: Runner, out: Output, ask: Ask) -> int:
    """Carry out the parsed command; return the exit status."""
    if args.action != "plan" and not args.project:
        out(f"ordertasks deploy {args.action}: --project is required (the catalog's project id is a placeholder)")
        return 2
    target = make_target(load_catalog(args.config), args.project, args.region, bucket=args.bucket,
                         handler_url=args.handler_url, checkout_url=args.checkout_url)
    resources = build_plan(target, args.only)
    if args.action == "plan":
        print_plan(target, resources, args.only, out)
        return 0
    if args.action == "apply":
        apply(resources, run, out)
        note = scheduler_note(target, args.only)
        if note:
            out(note)
        return 0
    victims = doomed(resources, args.delete_data)
    if not _confirm(victims, args, out, ask):
        out("Nothing deleted.")
        return 1
    return 1 if destroy(victims, run, out) else 0


def main(argv: Sequence[str] | None = None, run: Runner | None = None, out: Output = print,
         ask: Ask = input) -> int:
    """Entry point of ``ordertasks deploy`` and ``python -m infra.deploy``."""
    args = parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        return run_action(args, run or gcloud_runner(), out, ask)
    except (DeployError, CatalogError) as exc:
        print(f"ordertasks deploy {args.action}: {exc}", file=sys.stderr)
        return 1
