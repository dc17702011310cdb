"""``ordertasks deploy``: plan output, argument errors, destroy's confirmation and what it deletes."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from ordertasks.infra.config import REPO_ROOT
from ordertasks.infra.deploy import SECTIONS, main
from ordertasks.infra.deploy._model import Command
from tests.deploy.conftest import CHECKOUT_URL, COMPLETE, PROJECT, REGION, recorded_runner
from tests.deploy.recorder import Recorder

BASE = ["--project", PROJECT, "--region", REGION, "--checkout-url", CHECKOUT_URL, "--config", str(COMPLETE)]


def run_main(argv: list[str], **kwargs: object) -> tuple[int, list[str]]:
    lines: list[str] = []
    return main(argv, out=lines.append, **kwargs), lines  # type: ignore[arg-type]


def test_plan_numbers_every_command_in_section_order() -> None:
    status, lines = run_main(["plan", *BASE])

    numbered = [line for line in lines if re.match(r"^ *\d+\. gcloud ", line)]
    assert status == 0
    assert [int(line.split(".")[0]) for line in numbered] == list(range(1, len(numbered) + 1))
    headers = [line[2:] for line in lines if line.startswith("# ") and line[2:] in SECTIONS]
    assert headers == list(SECTIONS)
    assert any("--ingress-settings=internal-only" in line and "--no-allow-unauthenticated" in line for line in numbered)


def test_plan_only_selected_sections() -> None:
    _, lines = run_main(["plan", *BASE, "--only", "iam,ttl"])

    numbered = [line for line in lines if re.match(r"^ *\d+\. ", line)]
    assert numbered[0].startswith(" 1. gcloud tasks queues add-iam-policy-binding")
    assert numbered[-1].strip().startswith(f"{len(numbered)}. gcloud firestore fields ttls update")


def test_scheduler_jobs_need_no_checkout_url() -> None:
    _, lines = run_main(["plan", "--project", PROJECT, "--config", str(COMPLETE)])

    jobs = [line for line in lines if "scheduler jobs create http" in line]
    assert len(jobs) == 2 and all("cloudfunctions.net/ordertasks-maintenance/" in line for line in jobs)


def test_python_dash_m_runs_the_plan() -> None:
    result = subprocess.run([sys.executable, "-m", "ordertasks.infra.deploy", "plan", "--only", "apis", "--config", str(COMPLETE)], cwd=REPO_ROOT,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert " 1. gcloud services enable cloudtasks.googleapis.com" in result.stdout


def test_apply_needs_a_project() -> None:
    status, lines = run_main(["apply"])
    assert status == 2 and "--project is required" in lines[0]


def test_unknown_section_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["plan", "--only", "queue"])
    assert "unknown section 'queue'" in capsys.readouterr().err


def never_run(command: Command) -> subprocess.CompletedProcess[str]:
    raise AssertionError(f"nothing may run before confirmation: {command}")


def test_destroy_lists_what_it_deletes_and_stops_without_confirmation() -> None:
    status, lines = run_main(["destroy", *BASE], run=never_run, ask=lambda prompt: "no")

    assert status == 1 and lines[-1] == "Nothing deleted."
    assert "  - function ordertasks-handler" in lines
    assert not any(line.startswith(("  - bucket", "  - Firestore database")) for line in lines)
    assert any(line.startswith("Kept (pass --delete-data") for line in lines)


@pytest.mark.timeout(900)  # one real gcloud run per resource (about 45) on a shared machine
def test_destroy_runs_deletes_through_gcloud(recorder: Recorder, gcloud_env: dict[str, str]) -> None:
    status, lines = run_main(["destroy", *BASE, "--delete-data"], run=recorded_runner(gcloud_env, recorder),
                             ask=lambda prompt: PROJECT)

    assert status == 0, (lines, recorder.requests)
    deletes = {r.path for r in recorder.find("DELETE", ".")}
    loc = f"/projects/{PROJECT}/locations/{REGION}"
    assert {f"/v1{loc}/jobs/ordertasks-reconcile", f"/v1{loc}/jobs/ordertasks-sweep",
            f"/v2{loc}/functions/ordertasks-handler", f"/v2{loc}/queues/ordertasks-email",
            f"/storage/v1/b/{PROJECT}-invoices"} <= deletes
    assert any(p.endswith(f"serviceAccounts/ordertasks-handler@{PROJECT}.iam.gserviceaccount.com") for p in deletes)
    bulk = recorder.find("POST", r":bulkDeleteDocuments$")
    assert bulk and "idempotency" in bulk[0].body["collectionIds"]
