"""``deploy plan`` as a person sees it: the whole system for a complete catalog (golden file),
a refusal naming each missing setting before anything is printed, and no secret value ever."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ordertasks.infra.config import DEFAULT_CATALOG
from ordertasks.infra.deploy import main
from tests.deploy.conftest import CLOUD_SECTION, COMPLETE, PROJECT, REGION

GOLDEN = Path(__file__).with_name("golden-plan.txt")
DIGEST = re.compile(r"ordertasks-source=[0-9a-f]{16}")
SECRET_VALUES = {"ORDERTASKS_SMTP_PASSWORD": "smtp-pw-never-printed", "ORDERTASKS_STRIPE_SECRET_KEY": "sk_live_never_printed",
                 "ORDERTASKS_STRIPE_WEBHOOK_SECRET": "whsec_never_printed", "ORDERTASKS_WAREHOUSE_TOKEN": "wh-token-never-printed"}


def plan_lines(*args: str) -> tuple[int, list[str]]:
    lines: list[str] = []
    status = main(["plan", "--project", PROJECT, "--region", REGION, *args], out=lines.append)
    return status, lines


def test_plan_of_a_complete_catalog_matches_the_golden_file() -> None:
    status, lines = plan_lines("--config", str(COMPLETE))
    text = DIGEST.sub("ordertasks-source=<source digest>", "\n".join(lines)) + "\n"
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text, encoding="utf-8")
    assert status == 0
    assert text == GOLDEN.read_text(encoding="utf-8"), "plan changed: rerun with UPDATE_GOLDEN=1 and review the diff"


def without(line_start: str, tmp_path: Path) -> Path:
    """The complete catalog minus the [cloud] line starting with ``line_start``."""
    section = "".join(line for line in CLOUD_SECTION.read_text(encoding="utf-8").splitlines(keepends=True)
                      if not line.startswith(line_start))
    path = tmp_path / "tasks.toml"
    path.write_text(DEFAULT_CATALOG.read_text(encoding="utf-8") + "\n" + section, encoding="utf-8")
    return path


@pytest.mark.parametrize("line_start, named", [
    ("smtp_host", "[cloud] smtp_host"), ("mail_from", "[cloud] mail_from"),
    ("warehouse_url", "[cloud] warehouse_url"), ("notification_channel", "[cloud] notification_channel"),
    ("ORDERTASKS_SMTP_PASSWORD", "[cloud.secrets] ORDERTASKS_SMTP_PASSWORD"),
    ("ORDERTASKS_STRIPE_SECRET_KEY", "[cloud.secrets] ORDERTASKS_STRIPE_SECRET_KEY"),
    ("ORDERTASKS_STRIPE_WEBHOOK_SECRET", "[cloud.secrets] ORDERTASKS_STRIPE_WEBHOOK_SECRET"),
])
def test_each_missing_setting_is_a_refusal_naming_it(line_start: str, named: str, tmp_path: Path) -> None:
    status, lines = plan_lines("--config", str(without(line_start, tmp_path)))
    assert status == 2
    assert lines[0].startswith("ordertasks deploy plan: refusing") and "1 setting(s)" in lines[0]
    assert lines[1].startswith(f"  - {named}")
    assert not any(re.match(r"^ *\d+\. gcloud", line) for line in lines)  # nothing half printed


def test_a_flag_supplies_what_the_catalog_lacks(tmp_path: Path) -> None:
    catalog = without("smtp_host", tmp_path)
    status, lines = plan_lines("--config", str(catalog), "--set", "smtp_host=smtp.flag.my-shop.com")
    assert status == 0 and any("ORDERTASKS_SMTP_HOST=smtp.flag.my-shop.com" in line for line in lines)


def test_a_loopback_setting_is_refused_like_a_missing_one() -> None:
    status, lines = plan_lines("--config", str(COMPLETE), "--set", "warehouse_url=http://127.0.0.1:8090/n")
    assert status == 2 and "[cloud] warehouse_url" in lines[1] and "loopback" in lines[1]


def test_an_empty_catalog_names_every_missing_setting() -> None:
    status, lines = plan_lines("--config", str(DEFAULT_CATALOG))
    named = {line.split(" (", 1)[0].removeprefix("  - ") for line in lines[1:]}
    assert status == 2
    assert {"[cloud] smtp_host", "[cloud] mail_from", "[cloud] warehouse_url", "[cloud] notification_channel",
            "[cloud.secrets] ORDERTASKS_STRIPE_SECRET_KEY", "[cloud.secrets] ORDERTASKS_STRIPE_WEBHOOK_SECRET"} <= named


def test_sections_that_deploy_no_settings_plan_without_them() -> None:
    status, lines = plan_lines("--config", str(DEFAULT_CATALOG), "--only", "queues,iam")
    assert status == 0 and any("tasks queues create" in line for line in lines)


def test_a_secret_value_is_never_printed_even_when_it_is_in_the_environment() -> None:
    env = {**os.environ, **SECRET_VALUES}
    result = subprocess.run([sys.executable, "-m", "ordertasks.infra.deploy", "plan", "--project", PROJECT, "--config", str(COMPLETE)],
                            cwd=Path.cwd(), env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "--set-secrets=ORDERTASKS_SMTP_PASSWORD=smtp-password:latest" in result.stdout
    assert not any(value in result.stdout + result.stderr for value in SECRET_VALUES.values())


def test_a_value_given_as_a_secret_reference_is_refused_without_echoing_it(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines = plan_lines("--config", str(COMPLETE), "--secret", "ORDERTASKS_SMTP_PASSWORD=hunter2 with spaces")
    err = capsys.readouterr().err
    assert status == 1 and lines == []
    assert "secret ORDERTASKS_SMTP_PASSWORD: not a Secret Manager reference" in err and "hunter2" not in err
