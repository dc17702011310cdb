"""``ordertasks deploy`` from a shop's own project: no checkout of this repository in sight.

The shop's directory (outside the repository) holds its catalog, which extends the shipped one,
drops the warehouse and our checkout, and adds a code kind (``shop_kinds.py`` beside it) and a
webhook kind. The installed ``ordertasks`` command, run there as the shop runs it, plans the
whole system: no Stripe or warehouse setting is asked for, the staging directory holds what the
functions deploy (``main.py``, ``requirements.txt``, the ordertasks wheel, the shop's module, the
flattened catalog), and no path in the plan points into the repository. The staged ``main.py``,
imported with nothing but the staged source and the staged wheel on the path, exposes both
entry points and passes the cloud start-up check with the environment the plan deploys.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from ordertasks.infra.config import DEFAULT_CATALOG, REPO_ROOT, load_catalog
from ordertasks.infra.deploy import build_plan, make_target
from tests.deploy.conftest import CLOUD_SECTION, PROJECT, REGION
from tests.deploy.shop import SHOP_CATALOG, SHOP_KINDS, write_shop

STAGED = Path(".ordertasks/deploy/source")


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """The shop's project directory: its catalog and its kind module, nothing of ours."""
    return write_shop(tmp_path / "shop")


def shop_env(*path: Path, **variables: str) -> dict[str, str]:
    """A shell of the shop's: no ORDERTASKS_* or PYTHONPATH of the developer's, ``path`` importable."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ORDERTASKS_", "CLOUD_TASKS_", "PYTHON")) and str(REPO_ROOT) not in v}
    return {**env, "PATH": os.defpath, "PYTHONPATH": os.pathsep.join(str(p) for p in path), **variables}


def ordertasks(shop: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed ``ordertasks`` command, run in the shop's directory as the shop runs it."""
    command = [str(Path(sys.prefix) / "bin" / "ordertasks"), *args]
    return subprocess.run(command, cwd=shop, env=shop_env(shop, ORDERTASKS_CONFIG="tasks.toml"),
                          capture_output=True, text=True, timeout=120, check=False)


def plan(shop: Path, *args: str) -> str:
    done = ordertasks(shop, "deploy", "plan", "--project", PROJECT, "--region", REGION, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def planned(stdout: str, *words: str) -> list[list[str]]:
    """The planned gcloud commands that start with ``words``, split as a shell would."""
    commands = [shlex.split(line.split(". ", 1)[1])[1:] for line in stdout.splitlines() if line.lstrip()[:1].isdigit()]
    return [c for c in commands if c[:len(words)] == list(words)]


def flags(command: list[str]) -> dict[str, str]:
    return dict(part.removeprefix("--").split("=", 1) for part in command if part.startswith("--") and "=" in part)


def env_of(flag: str) -> dict[str, str]:
    separator, text = (flag[1:].split("^", 1)) if flag.startswith("^") else (",", flag)
    return dict(pair.split("=", 1) for pair in text.split(separator))


def test_a_shop_catalog_plans_without_stripe_warehouse_or_checkout(shop: Path) -> None:
    stdout = plan(shop)

    assert "STRIPE" not in stdout and "WAREHOUSE" not in stdout and "ordertasks-warehouse" not in stdout
    assert not planned(stdout, "run", "deploy") and "# checkout: no checkout service" in stdout
    assert {c[3] for c in planned(stdout, "tasks", "queues", "create")} == {
        "ordertasks-email", "ordertasks-analytics", "ordertasks-invoice", "shop-crm"}
    assert str(REPO_ROOT) not in stdout and "--source=.ordertasks/deploy/source" in stdout


def test_cloud_env_and_cloud_secrets_reach_the_handler_only(shop: Path) -> None:
    stdout = plan(shop)

    handler, maintenance = (flags(planned(stdout, "functions", "deploy", name)[0])
                            for name in ("ordertasks-handler", "ordertasks-maintenance"))
    assert env_of(handler["update-env-vars"])["SHOP_CRM_URL"] == "https://crm.my-shop.com/orders"
    assert "SHOP_CRM_TOKEN=crm-token:latest" in handler["set-secrets"].split(",")
    assert env_of(handler["update-env-vars"])["ORDERTASKS_CONFIG"] == "tasks.toml"
    assert "SHOP_CRM_URL" not in env_of(maintenance["update-env-vars"]) and "set-secrets" not in maintenance


def test_the_staging_directory_holds_what_the_functions_deploy(shop: Path) -> None:
    plan(shop)
    staged = shop / STAGED

    assert {"main.py", "requirements.txt", "tasks.toml", "shop_kinds.py"} <= {p.name for p in staged.iterdir()}
    [wheel] = staged.glob("ordertasks-*-py3-none-any.whl")
    requirements = (staged / "requirements.txt").read_text(encoding="utf-8").splitlines()
    assert f"./{wheel.name}" in requirements and any(r.startswith("functions-framework") for r in requirements)
    assert not any(r.startswith("stripe") for r in requirements)    # no checkout deployed: no Stripe installed
    assert (staged / "shop_kinds.py").read_text(encoding="utf-8") == SHOP_KINDS
    catalog = tomllib.loads((staged / "tasks.toml").read_text(encoding="utf-8"))
    assert "extends" not in catalog and "checkout" not in catalog and "notify_warehouse" not in catalog["kinds"]
    assert catalog["kinds"]["send_confirmation_email"]["queue"] == "ordertasks-email"   # inherited, flattened
    texts = [p.read_text(encoding="utf-8") for p in staged.rglob("*") if p.is_file() and p.suffix != ".whl"]
    assert not any(str(REPO_ROOT) in text or str(shop) in text for text in texts)


def test_the_staged_main_imports_with_only_the_staged_source_and_wheel(shop: Path, tmp_path: Path) -> None:
    stdout = plan(shop)
    staged = shop / STAGED
    unpacked = tmp_path / "installed"
    [wheel] = staged.glob("ordertasks-*.whl")
    zipfile.ZipFile(wheel).extractall(unpacked)
    handler = flags(planned(stdout, "functions", "deploy", "ordertasks-handler")[0])
    mounted = {item.split("=", 1)[0]: "from-secret-manager" for item in handler["set-secrets"].split(",")}
    cloud = {**env_of(handler["update-env-vars"]), **mounted, "FUNCTION_TARGET": "handle_task"}
    probe = ("import sys, main, ordertasks\n"
             "from ordertasks.handlers.config import Settings\n"
             "from ordertasks.handlers.registry import KindRegistry\n"
             "kinds = KindRegistry.from_catalog(Settings.from_env().catalog())\n"
             "print(ordertasks.__file__, main.handle_task.__name__, main.run_maintenance.__name__, "
             "sys.modules['shop_kinds'].__file__, sorted(kinds.webhooks))")

    done = subprocess.run([sys.executable, "-c", probe], cwd=staged, env=shop_env(staged, unpacked, **cloud),
                          capture_output=True, text=True, timeout=120, check=False)

    assert done.returncode == 0, done.stderr
    origin, entry, maintenance, shop_module, webhooks = done.stdout.split(" ", 4)
    assert Path(origin).is_relative_to(unpacked)     # ordertasks from the staged wheel, not the checkout
    assert (entry, maintenance) == ("handle_task", "run_maintenance")
    assert Path(shop_module) == staged / "shop_kinds.py" and webhooks.strip() == "['sync_crm']"


def test_a_missing_cloud_env_variable_is_a_refusal_naming_it(shop: Path) -> None:
    catalog = shop / "tasks.toml"
    catalog.write_text(SHOP_CATALOG.replace('SHOP_CRM_URL = "https://crm.my-shop.com/orders"', ""), encoding="utf-8")

    done = ordertasks(shop, "deploy", "plan", "--project", PROJECT)

    assert done.returncode == 2 and "SHOP_CRM_URL is not set: [kinds.sync_crm.webhook] url names it" in done.stdout
    assert not (shop / STAGED).exists()


def test_checkout_flags_are_refused_when_no_checkout_is_deployed(shop: Path) -> None:
    done = ordertasks(shop, "deploy", "plan", "--project", PROJECT, "--allow-unauthenticated")
    assert done.returncode == 2 and "--allow-unauthenticated: this deployment has no checkout service" in done.stdout


def test_cloud_checkout_false_leaves_our_checkout_out_of_the_shipped_catalog(tmp_path: Path) -> None:
    catalog = tmp_path / "no-checkout.toml"
    cloud = CLOUD_SECTION.read_text(encoding="utf-8").replace("\n[cloud]\n", "\n[cloud]\ncheckout = false\n")
    catalog.write_text(DEFAULT_CATALOG.read_text(encoding="utf-8") + "\n" + cloud, encoding="utf-8")
    t = make_target(load_catalog(catalog), PROJECT, REGION)
    plan_ = build_plan(t)

    assert not t.checkout_deployed and not [r for r in plan_ if r.section == "checkout"]
    assert not any("stripe" in " ".join(r.create).lower() for r in plan_)
    assert t.display_name("checkout").startswith("ordertasks producer")
