"""``ordertasks deploy`` tells the checkout its own URL (``ORDERTASKS_CHECKOUT_URL``), the
audience its ``/internal/*`` expects: ``--checkout-url``, else its Cloud Run URL
``https://SERVICE-PROJECT_NUMBER.REGION.run.app``, whose number ``apply`` reads with gcloud.
Without it the checkout would expect tokens for ``http://127.0.0.1:8080/`` (and now refuses
to start in the cloud)."""

from __future__ import annotations

import subprocess

import pytest

from ordertasks.infra.config import load_catalog
from ordertasks.infra.deploy import deployed_env, main, make_target
from ordertasks.infra.deploy._model import Command
from tests.deploy.conftest import COMPLETE, PROJECT, REGION, recorded_runner
from tests.deploy.recorder import Recorder

BASE = ["--project", PROJECT, "--region", REGION, "--config", str(COMPLETE)]
RUN_URL = f"https://ordertasks-checkout-123456789.{REGION}.run.app"   # the recorder's project number


def run_main(argv: list[str], **kwargs: object) -> tuple[int, list[str]]:
    lines: list[str] = []
    return main(argv, out=lines.append, **kwargs), lines  # type: ignore[arg-type]


def test_the_planned_checkout_gets_its_cloud_run_url() -> None:
    env = deployed_env(make_target(load_catalog(COMPLETE), PROJECT, REGION))
    assert env["checkout"]["ORDERTASKS_CHECKOUT_URL"] == f"https://ordertasks-checkout-PROJECT_NUMBER.{REGION}.run.app"
    assert "ORDERTASKS_CHECKOUT_URL" not in env["handler"]
    numbered = make_target(load_catalog(COMPLETE), PROJECT, REGION, project_number="42")
    assert deployed_env(numbered)["checkout"]["ORDERTASKS_CHECKOUT_URL"] == f"https://ordertasks-checkout-42.{REGION}.run.app"


def test_checkout_url_flag_wins() -> None:
    status, lines = run_main(["plan", *BASE, "--only", "checkout", "--checkout-url", "https://shop.example/api"])
    assert status == 0
    assert any("ORDERTASKS_CHECKOUT_URL=https://shop.example/api," in line for line in lines)
    assert not any("PROJECT_NUMBER" in line for line in lines)


def test_the_plan_says_apply_fills_in_the_project_number() -> None:
    status, lines = run_main(["plan", *BASE, "--only", "checkout"])
    assert status == 0
    assert any(line.startswith("# checkout: ORDERTASKS_CHECKOUT_URL is its Cloud Run URL") for line in lines)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://checkout.shop.example"])
def test_a_checkout_url_that_cannot_be_the_audience_is_refused(url: str) -> None:
    status, lines = run_main(["plan", *BASE, "--checkout-url", url])
    assert status == 2
    assert any(line.startswith("  - --checkout-url: ORDERTASKS_CHECKOUT_URL is ") for line in lines), lines


def test_apply_reads_the_project_number_and_deploys_the_url(recorder: Recorder, gcloud_env: dict[str, str]) -> None:
    status, lines = run_main(["apply", *BASE, "--only", "checkout"], run=recorded_runner(gcloud_env, recorder))
    assert status == 0, lines
    assert recorder.find("GET", rf"^/v1/projects/{PROJECT}$")
    service = recorder.find("POST", rf"^/apis/serving.knative.dev/v1/namespaces/{PROJECT}/services$")[0].body
    env = {e["name"]: e.get("value") for e in service["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ORDERTASKS_CHECKOUT_URL"] == RUN_URL


def test_apply_without_a_readable_project_number_says_what_to_pass(capsys: pytest.CaptureFixture[str]) -> None:
    def no_access(command: Command) -> subprocess.CompletedProcess[str]:
        assert command[:2] == ("projects", "describe"), f"nothing may run before the number is known: {command}"
        return subprocess.CompletedProcess(command, 1, "", "ERROR: (gcloud.projects.describe) PERMISSION_DENIED\n")
    status, _ = run_main(["apply", *BASE, "--only", "checkout"], run=no_access)
    error = capsys.readouterr().err
    assert status == 1 and "PERMISSION_DENIED" in error and "pass --checkout-url" in error
