"""``ordertasks deploy`` on a shop's own catalog: named by ``ORDERTASKS_CONFIG`` (relative to the
working directory) or ``--config``, it is what the plan lists and what the readiness check reads."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ordertasks.infra.config import DEFAULT_CATALOG
from ordertasks.infra.deploy import deployed_env, plan_problems
from tests.deploy.conftest import COMPLETE, PROJECT, target
from tests.settings.custom_catalog import CUSTOM_QUEUE, CUSTOM_TOKEN, cli_argv, shell, write_custom_catalog

PLAN = ["deploy", "plan", "--project", PROJECT, "--checkout-url", "https://checkout.shop.example"]


def deploy(directory: Path, *args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_argv(*args), cwd=directory, env=shell(directory / "var", **variables),
                          capture_output=True, text=True, timeout=60, check=False)


def test_readiness_reads_the_catalog_being_deployed(tmp_path: Path) -> None:
    custom = target(write_custom_catalog(tmp_path / "shop.toml", source=DEFAULT_CATALOG))

    problems = plan_problems(custom.cloud, deployed_env(custom), Path(custom.catalog.source))

    assert any(CUSTOM_TOKEN in problem for problem in problems)
    assert not any(CUSTOM_TOKEN in problem for problem in plan_problems(custom.cloud, deployed_env(custom), COMPLETE))


def test_plan_uses_the_catalog_ordertasks_config_names(tmp_path: Path) -> None:
    write_custom_catalog(tmp_path / "shop.toml")

    refused = deploy(tmp_path, *PLAN, ORDERTASKS_CONFIG="shop.toml")
    planned = deploy(tmp_path, *PLAN, "--secret", f"{CUSTOM_TOKEN}=crm-token", ORDERTASKS_CONFIG="shop.toml")

    assert refused.returncode == 2 and f"{CUSTOM_TOKEN} (or --secret {CUSTOM_TOKEN}=SECRET)" in refused.stdout
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert f"gcloud tasks queues create {CUSTOM_QUEUE} " in planned.stdout


def test_config_flag_wins_over_the_variable(tmp_path: Path) -> None:
    write_custom_catalog(tmp_path / "shop.toml")

    planned = deploy(tmp_path, *PLAN, "--config", "shop.toml", "--secret", f"{CUSTOM_TOKEN}=crm-token",
                     ORDERTASKS_CONFIG="missing.toml")

    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert f"gcloud tasks queues create {CUSTOM_QUEUE} " in planned.stdout
