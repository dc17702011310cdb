"""``ordertasks deploy plan|apply|destroy``: argument parsing and the three commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from ordertasks.handlers.settings import configured_catalog_path
from ordertasks.infra.config import CatalogError, load_catalog

from ordertasks.infra.deploy._cloud import CloudConfigError, plan_problems
from ordertasks.infra.deploy._engine import DeployError, Output, Runner, apply, destroy, doomed, gcloud_runner
from ordertasks.infra.deploy._model import SECTIONS, Resource, render
from ordertasks.infra.deploy._plan import build_plan, deployed_env
from ordertasks.infra.deploy._services import with_project_number
from ordertasks.infra.deploy._source import DEFAULT_STAGING, SourceOptions, StagedSource, StagingError, stage_source
from ordertasks.infra.deploy._target import PROJECT_NUMBER, Target, make_target
from ordertasks.infra.deploy._wheel import DEPLOYED_EXTRAS
from ordertasks.infra.deploy._terraform import TerraformExportError, write_terraform

CONFIGURED = ("secrets", "function", "maintenance", "checkout", "monitoring")
"""Sections that deploy settings: a plan with any of them is refused while one is missing."""
STAGED = ("function", "maintenance", "checkout", "monitoring")
"""Sections whose commands name staged files: the source, the monitoring definitions."""

Ask = Callable[[str], str]


def _sections(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SECTIONS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown section {unknown[0]!r}; choose from {', '.join(SECTIONS)}")
    return names


def parser() -> argparse.ArgumentParser:
    """The ``deploy`` command line."""
    p = argparse.ArgumentParser(prog="ordertasks deploy", description="Plan, apply, destroy or export (as a Terraform "
                                "module) the Google Cloud deployment described by the task catalog (--config, else "
                                "ORDERTASKS_CONFIG, else infra/tasks.toml). The deployables' source is staged under --staging-dir "
                                "in the working directory: run from the shop's project.")
    p.add_argument("action", choices=("plan", "apply", "destroy", "export"),
                   help="plan: print the gcloud commands; apply: run them; destroy: remove what apply made; "
                        "export: write them as a Terraform module")
    p.add_argument("directory", nargs="?", help="export: the directory the module is written to")
    p.add_argument("--format", choices=("terraform",), help="export: the format; terraform writes a Terraform "
                   "module (google provider) equivalent to the plan")
    p.add_argument("--project", help="Google Cloud project id (required for apply and destroy)")
    p.add_argument("--region", help="region of queues, function, bucket, Firestore and jobs")
    p.add_argument("--only", type=_sections, default=[], help="comma-separated sections: " + ",".join(SECTIONS))
    p.add_argument("--config", help="the task catalog (default: ORDERTASKS_CONFIG, else infra/tasks.toml)")
    p.add_argument("--bucket", help="invoice bucket name (default: from the catalog, prefixed with --project)")
    p.add_argument("--handler-url", help="URL Cloud Tasks calls and the token audience (default: the "
                   "function's cloudfunctions.net URL)")
    p.add_argument("--checkout-url", help="the checkout service's URL, set as its ORDERTASKS_CHECKOUT_URL (the "
                   "audience of /internal/*); default: its Cloud Run URL https://SERVICE-PROJECT_NUMBER.REGION.run.app, "
                   "the number looked up by apply")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a [cloud] setting, e.g. --set smtp_host=smtp.example.com (repeatable; wins over the catalog)")
    p.add_argument("--secret", action="append", default=[], metavar="VARIABLE=SECRET[:VERSION]",
                   help="a [cloud.secrets] reference, e.g. --secret ORDERTASKS_SMTP_PASSWORD=smtp-password "
                   "(the Secret Manager secret's name, never its value; repeatable)")
    p.add_argument("--notification-channel", help="where alerts go: projects/P/notificationChannels/ID "
                   "(default: [cloud] notification_channel)")
    p.add_argument("--allow-unauthenticated", action="store_true",
                   help="let anyone call the checkout service (a storefront in the browser, Stripe webhooks); "
                   "default: private, callers need roles/run.invoker")
    p.add_argument("--staging-dir", default=DEFAULT_STAGING, help="where the deployables' source (DIR/source: main.py, "
                   "requirements.txt, the ordertasks wheel, the catalog, the shop's kind modules) and the monitoring "
                   f"definitions (DIR/monitoring) are staged; default {DEFAULT_STAGING}, replaced on every run")
    wheel = p.add_mutually_exclusive_group()
    wheel.add_argument("--ordertasks-wheel", type=Path, metavar="PATH", help="the ordertasks wheel the functions "
                       "install (default: rebuilt from the installed ordertasks, or from this checkout)")
    wheel.add_argument("--ordertasks-requirement", metavar="SPEC", help="install ordertasks from the shop's index "
                       "instead of a staged wheel, e.g. 'ordertasks==0.1.0' (the version this command runs)")
    p.add_argument("--requirements", type=Path, metavar="FILE", help="lines added to the staged requirements.txt: "
                   "what the shop's kind modules import, an --index-url for the shop's index")
    p.add_argument("--yes", action="store_true", help="destroy without asking")
    p.add_argument("--delete-data", action="store_true", help="destroy also deletes the bucket and Firestore data")
    return p


def print_plan(t: Target, resources: Sequence[Resource], only: Sequence[str], out: Output,
               staged: StagedSource | None = None) -> None:
    """Numbered gcloud commands, one section header each, plus what was left out and why."""
    out(f"# ordertasks deployment plan: project {t.project}, region {t.region}. Paths are relative to the "
        "directory the plan was made in: run the commands there.")
    section = ""
    for number, resource in enumerate(resources, start=1):
        if resource.section != section:
            section = resource.section
            out("")
            out(f"# {section}")
        out(f"{number:>2}. {render(resource.create)}")
    for note in plan_notes(t, only, staged):
        out("")
        out("# " + note)


def plan_notes(t: Target, only: Sequence[str], staged: StagedSource | None = None) -> list[str]:
    """Remarks printed under the plan: what was staged, settings that cannot be set, what stays manual."""
    notes = (_source_note(t, staged), _firestore_note(t, only), _checkout_note(t, only), _burst_note(only),
             _secrets_note(t, only), _checkout_url_note(t, only))
    return [note for note in notes if note]


def _source_note(t: Target, staged: StagedSource | None) -> str | None:
    if staged is None:
        return None
    modules = f"; the shop's modules: {', '.join(staged.modules)}" if staged.modules else ""
    wheel = "the ordertasks wheel it installs, " if staged.ordertasks.endswith(".whl") else ""
    return (f"source: {t.source_dir} holds main.py (handle_task, run_maintenance), requirements.txt, {wheel}"
            f"the catalog as tasks.toml (ORDERTASKS_CONFIG){modules}. {t.monitoring_dir} holds the metric "
            "and dashboard definitions.")


def _firestore_note(t: Target, only: Sequence[str]) -> str | None:
    if only and "firestore" not in only:
        return None
    return (f"firestore: apply describes database {t.firestore_database} first and creates it only if it is "
            "absent; an existing database is used as it is.")


def _checkout_note(t: Target, only: Sequence[str]) -> str | None:
    if t.checkout_deployed or only and "checkout" not in only:
        return None
    return ("checkout: no checkout service (the catalog has no [checkout] table, or [cloud] checkout = false). "
            f"The shop's app enqueues through the library: run it as {t.email('checkout')}, or give its own "
            "account that account's grants (docs/deploy.md, \"Without our checkout\").")


def _checkout_url_note(t: Target, only: Sequence[str]) -> str | None:
    if only and "checkout" not in only or not t.checkout_deployed or PROJECT_NUMBER not in t.checkout_service_url:
        return None
    return (f"checkout: ORDERTASKS_CHECKOUT_URL is its Cloud Run URL; apply fills in {PROJECT_NUMBER} "
            f"(gcloud projects describe {t.project}). Pass --checkout-url for another URL, e.g. a custom domain.")


def _secrets_note(t: Target, only: Sequence[str]) -> str | None:
    if only and "secrets" not in only or not t.cloud.secrets:
        return None
    return ("secrets: apply checks that each exists and grants access; it never creates, reads or prints "
            "a value. Create one with: printf '%s' \"$VALUE\" | gcloud secrets create NAME --data-file=-")


def _burst_note(only: Sequence[str]) -> str | None:
    if only and "queues" not in only:
        return None
    return ("maxBurstSize is not set: Cloud Tasks v2 derives it from maxDispatchesPerSecond "
            "(output only); gcloud has no flag for it.")


def refusal(t: Target, only: Sequence[str]) -> list[str]:
    """What the deployed system would lack, when the selected sections deploy settings."""
    if only and not set(only) & set(CONFIGURED):
        return []
    return plan_problems(t.cloud, deployed_env(t), Path(t.catalog.source))


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
    usage = _export_usage(args)
    if usage:
        out(f"ordertasks deploy {args.action}: {usage}")
        return 2
    if args.action not in ("plan", "export") and not args.project:
        out(f"ordertasks deploy {args.action}: --project is required (the catalog's project id is a placeholder)")
        return 2
    target = make_target(load_catalog(configured_catalog_path(args.config)), args.project, args.region, bucket=args.bucket,
                         handler_url=args.handler_url, checkout_url=args.checkout_url, sets=args.set,
                         secrets=args.secret, notification_channel=args.notification_channel,
                         allow_unauthenticated=args.allow_unauthenticated, staging_dir=args.staging_dir)
    misplaced = _checkout_flags(target, args)
    if misplaced:
        out(f"ordertasks deploy {args.action}: {misplaced}")
        return 2
    if args.action == "apply" and (not args.only or "checkout" in args.only):
        target = with_project_number(target, run)
    problems = refusal(target, args.only) if args.action != "destroy" else []
    if problems:
        out(f"ordertasks deploy {args.action}: refusing: the deployed system would start without "
            f"{len(problems)} setting(s); set them in the catalog's [cloud] section or with flags:")
        for problem in problems:
            out(f"  - {problem}")
        return 2
    staged = _stage(target, args) if args.action != "destroy" else None
    if staged is not None:
        target = replace(target, source_digest=staged.digest)
    if args.action == "export":
        return export(target, Path(args.directory), out, staged)
    resources = build_plan(target, args.only)
    if args.action == "plan":
        print_plan(target, resources, args.only, out, staged)
        return 0
    if args.action == "apply":
        apply(resources, run, out)
        return 0
    victims = doomed(resources, args.delete_data)
    if not _confirm(victims, args, out, ask):
        out("Nothing deleted.")
        return 1
    return 1 if destroy(victims, run, out) else 0


def _checkout_flags(t: Target, args: argparse.Namespace) -> str | None:
    """Flags about the checkout service given for a deployment without one."""
    given = [flag for flag, value in (("--allow-unauthenticated", args.allow_unauthenticated),
                                      ("--checkout-url", args.checkout_url)) if value]
    if t.checkout_deployed or not given:
        return None
    return (f"{' and '.join(given)}: this deployment has no checkout service (the catalog has no [checkout] "
            "table, or [cloud] checkout = false)")


def _stage(t: Target, args: argparse.Namespace) -> StagedSource | None:
    """Stage the source when a selected section names it (export: always)."""
    if args.action != "export" and args.only and not set(args.only) & set(STAGED):
        return None
    # Only what is deployed: no Stripe in a function whose deployment has no checkout service.
    extras = tuple(e for e in DEPLOYED_EXTRAS if e != "checkout" or t.checkout_deployed)
    extras += ("tracing",) if t.cloud.tracing else ()
    return stage_source(t.catalog, SourceOptions(Path(args.staging_dir), args.ordertasks_wheel,
                                                 args.ordertasks_requirement, args.requirements, extras))


def _export_usage(args: argparse.Namespace) -> str | None:
    if args.action != "export":
        return "a directory and --format are only for export" if args.directory or args.format else None
    if args.format != "terraform" or not args.directory:
        return "usage: ordertasks deploy export --format terraform DIR"
    return "--only does not apply: the module holds the whole plan" if args.only else None


def export(t: Target, directory: Path, out: Output, staged: StagedSource | None = None) -> int:
    """Write the Terraform module of the plan; name the files and the inputs without a default."""
    written = write_terraform(t, directory, staged.source if staged else None)
    out(f"Wrote a Terraform module equivalent to the plan to {directory}: "
        + ", ".join(p.name for p in written.files))
    if written.inputs:
        out("Set before terraform apply (no default): " + ", ".join(written.inputs)
            + ". See docs/deploy.md, \"Terraform\".")
    return 0


def main(argv: Sequence[str] | None = None, run: Runner | None = None, out: Output = print,
         ask: Ask = input) -> int:
    """Entry point of ``ordertasks deploy`` and ``python -m infra.deploy``."""
    # Intermixed: `export --format terraform DIR` puts the directory after an option.
    args = parser().parse_intermixed_args(sys.argv[1:] if argv is None else list(argv))
    try:
        return run_action(args, run or gcloud_runner(), out, ask)
    except CatalogError as exc:
        print(f"ordertasks deploy {args.action}: {exc}", file=sys.stderr)
        return 2
    except (DeployError, CloudConfigError, StagingError, TerraformExportError) as exc:
        print(f"ordertasks deploy {args.action}: {exc}", file=sys.stderr)
        return 1
