"""What deploy stages and where it comes from: the ordertasks wheel (from a checkout, from an
installed wheel, or given), the flattened catalog, the requirements, and the Firestore database
the plan and every deployable name."""

from __future__ import annotations

import email
import tomllib
import zipfile
from importlib.metadata import PathDistribution
from pathlib import Path

import pytest

from ordertasks.infra.config import DEFAULT_CATALOG, load_catalog
from ordertasks.infra.deploy import SourceOptions, StagingError, build_plan, deployed_env, main, make_target, stage_source
from ordertasks.infra.deploy._access import iam_bindings
from ordertasks.infra.deploy._toml import dumps
from ordertasks.infra.deploy._wheel import (WheelError, _installed_files, deployed_requirements, stage_wheel,
                                            write_wheel)
from tests.deploy.conftest import CLOUD_SECTION, COMPLETE, PROJECT, REGION


def test_the_catalog_writer_reproduces_every_value_a_catalog_holds() -> None:
    document = {"top": "x", "project": {"id": "p", "region": "europe-west1"},
                "kinds": {"a": {"queue": "q", "delay_seconds": 0, "ratio": 0.25, "on": True,
                                "webhook": {"url": "${CRM_URL:-https://c.example/\"x\"}", "allow_private": ["10.0.0.0/8"]}}},
                "odd key": {"é": "ünïcode\ttab\nline"}, "empty": {}, "rows": [{"a": 1}, {"a": 2, "b": {"c": 3}}]}
    assert tomllib.loads(dumps(document, header="two\nlines")) == document


def test_the_catalog_writer_refuses_what_it_cannot_reproduce() -> None:
    with pytest.raises(ValueError, match="cannot write a set"):
        dumps({"x": {1, 2}})


def test_requirements_keep_the_handler_and_checkout_extras_and_drop_the_others() -> None:
    requires = ["pydantic<3,>=2.10", 'gunicorn<28,>=23; extra == "handler"', 'stripe<17,>=12; extra == "checkout"',
                'aiohttp<4; extra == "local"', 'ordertasks[checkout,handler,local]; extra == "all"',
                'tomli>=2; python_version < "3.11"']
    assert deployed_requirements(requires) == ["pydantic<3,>=2.10", "gunicorn<28,>=23", "stripe<17,>=12",
                                               'tomli>=2; python_version < "3.11"']


def installed(wheel: Path, site: Path) -> PathDistribution:
    """``wheel`` unpacked into ``site`` as pip installs it (with the files an installer adds)."""
    zipfile.ZipFile(wheel).extractall(site)
    [info] = site.glob("*.dist-info")
    (info / "INSTALLER").write_text("pip\n")
    (info / "direct_url.json").write_text("{}")
    with (info / "RECORD").open("a") as record:
        record.write(f"{info.name}/INSTALLER,,\n{info.name}/direct_url.json,,\n../../../bin/ordertasks,,\n")
    (site / "ordertasks" / "__pycache__").mkdir(exist_ok=True)
    return PathDistribution(info)


def test_an_installed_wheel_is_put_together_again_byte_for_byte(tmp_path: Path) -> None:
    built = stage_wheel(tmp_path).path                   # from this checkout
    files, metadata = _installed_files(installed(built, tmp_path / "site"))
    (tmp_path / "again").mkdir()
    again = write_wheel(tmp_path / "again", "0.1.0", files, metadata)
    assert again.read_bytes() == built.read_bytes()


def test_an_edited_installed_file_stops_the_deploy(tmp_path: Path) -> None:
    dist = installed(stage_wheel(tmp_path).path, tmp_path / "site")
    (tmp_path / "site" / "ordertasks" / "functions" / "main.py").write_text("# edited\n")
    with pytest.raises(WheelError, match="ordertasks/functions/main.py differs from what was installed"):
        _installed_files(dist)


def test_the_checkout_wheel_declares_the_projects_metadata(tmp_path: Path) -> None:
    wheel = stage_wheel(tmp_path)
    with zipfile.ZipFile(wheel.path) as archive:
        names = archive.namelist()
        metadata = email.message_from_bytes(archive.read("ordertasks-0.1.0.dist-info/METADATA"))
    assert {"ordertasks/__init__.py", "ordertasks/handlers/kinds/notify_warehouse.py", "ordertasks/infra/tasks.toml",
            "ordertasks/infra/monitoring/dashboard.json", "ordertasks/functions/main.py"} <= set(names)
    assert not any(n.startswith(("handlers/", "tests/", "infra/")) or "__pycache__" in n for n in names)
    assert metadata["Name"] == "ordertasks" and 'gunicorn>=23,<28; extra == "handler"' in wheel.requires
    assert any(r.startswith("functions-framework") for r in wheel.requires)


def test_a_given_wheel_is_staged_as_is(tmp_path: Path) -> None:
    (tmp_path / "built").mkdir()
    wheel = stage_wheel(tmp_path / "built").path
    staged = stage_source(load_catalog(COMPLETE), SourceOptions(tmp_path / "deploy", wheel=wheel))
    assert (staged.source / wheel.name).read_bytes() == wheel.read_bytes()
    with pytest.raises(StagingError, match="cannot read it as a wheel"):
        stage_source(load_catalog(COMPLETE), SourceOptions(tmp_path / "deploy", wheel=COMPLETE))


def test_a_requirement_on_the_shops_index_stages_no_wheel(tmp_path: Path) -> None:
    extra = tmp_path / "shop-requirements.txt"
    extra.write_text("--index-url https://pypi.my-shop.example/simple\nhubspot-api-client>=8\n")
    staged = stage_source(load_catalog(COMPLETE), SourceOptions(tmp_path / "deploy", requirement="ordertasks==0.1.0",
                                                                requirements=extra))
    lines = (staged.source / "requirements.txt").read_text().splitlines()
    assert "ordertasks==0.1.0" in lines and "hubspot-api-client>=8" in lines and lines.index("ordertasks==0.1.0") == 1
    assert not list(staged.source.glob("*.whl"))
    with pytest.raises(StagingError, match="this is ordertasks 0.1.0"):
        stage_source(load_catalog(COMPLETE), SourceOptions(tmp_path / "deploy", requirement="ordertasks==9.9"))


def test_a_staging_directory_deploy_did_not_write_is_refused(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(StagingError, match="not written by ordertasks deploy"):
        stage_source(load_catalog(COMPLETE), SourceOptions(tmp_path / "mine"))
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_an_unimportable_effect_module_is_named(tmp_path: Path) -> None:
    catalog = tmp_path / "tasks.toml"
    catalog.write_text(DEFAULT_CATALOG.read_text() + '\n[kinds.award]\nqueue = "ordertasks-email"\ndelay_seconds = 0\n'
                       'effect = "no_such_shop_module:award"\n')
    with pytest.raises(StagingError, match="effect module 'no_such_shop_module': not found on the module path"):
        stage_source(load_catalog(catalog), SourceOptions(tmp_path / "deploy"))


def test_a_named_firestore_database_is_what_every_part_uses(tmp_path: Path) -> None:
    catalog = tmp_path / "tasks.toml"
    cloud = CLOUD_SECTION.read_text().replace("\n[cloud]\n", '\n[cloud]\nfirestore_database = "shop-orders"\n')
    catalog.write_text(DEFAULT_CATALOG.read_text() + "\n" + cloud)
    t = make_target(load_catalog(catalog), PROJECT, REGION, checkout_url="https://checkout.shop.example")
    firestore = [r.create for r in build_plan(t, ["firestore", "ttl", "indexes"])]

    assert all("--database=shop-orders" in command for command in firestore) and len(firestore) > 3
    assert {env["ORDERTASKS_FIRESTORE_DATABASE"] for env in deployed_env(t).values()} == {"shop-orders"}
    assert {b.condition for b in iam_bindings(t) if b.condition} == {
        f'resource.name=="projects/{PROJECT}/databases/shop-orders"'}


def test_a_malformed_firestore_database_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["plan", "--project", PROJECT, "--config", str(COMPLETE), "--set", "firestore_database=Bad_Name"],
                  out=lambda _: None)
    assert status == 1 and "a Firestore database id is" in capsys.readouterr().err


def test_plan_stages_into_the_directory_it_names(working_directory: Path) -> None:
    lines: list[str] = []
    status = main(["plan", "--project", PROJECT, "--config", str(COMPLETE), "--checkout-url",
                   "https://checkout.shop.example", "--staging-dir", "staged/deploy"], out=lines.append)
    assert status == 0
    assert any("--source=staged/deploy/source " in line for line in lines)
    staged = working_directory / "staged" / "deploy"
    assert (staged / "source" / "main.py").is_file() and (staged / "monitoring" / "dashboard.json").is_file()
