"""``[cloud] tracing = true``: every deployable exports to Cloud Trace, the accounts that export
may (``roles/cloudtrace.agent``), and the staged source installs ``ordertasks[tracing]``.
Off (the default) changes nothing: ``tests/deploy/test_plan_golden.py``."""

from __future__ import annotations

from pathlib import Path

from ordertasks.infra.deploy import main
from tests.deploy.conftest import COMPLETE, PROJECT, REGION


def plan(config: Path) -> list[str]:
    lines: list[str] = []
    assert main(["plan", "--project", PROJECT, "--region", REGION, "--config", str(config)], out=lines.append) == 0
    return lines


def with_tracing(tmp_path: Path) -> Path:
    text = COMPLETE.read_text(encoding="utf-8").replace("\n[cloud]\n", "\n[cloud]\ntracing = true\n", 1)
    assert "tracing = true" in text
    path = tmp_path / "tasks.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_tracing_on_grants_cloudtrace_agent_and_sets_the_exporter(tmp_path: Path) -> None:
    traced, plain = plan(with_tracing(tmp_path)), plan(COMPLETE)
    grants = [line for line in traced if "roles/cloudtrace.agent" in line]
    assert len(grants) == 2 and not any("roles/cloudtrace.agent" in line for line in plain)
    assert any(f"ordertasks-handler@{PROJECT}.iam" in g for g in grants)
    assert any(f"ordertasks-checkout@{PROJECT}.iam" in g for g in grants)
    deploys = [line for line in traced if "functions deploy" in line or "run deploy" in line]
    assert deploys and all("OTEL_TRACES_EXPORTER=gcp_trace" in line for line in deploys)
    assert not any("OTEL_TRACES_EXPORTER" in line for line in plain)


def test_the_staged_requirements_carry_the_tracing_extra() -> None:
    from ordertasks.infra.deploy._source import _requirements

    requires = ['flask>=3.1,<4; extra == "handler"', 'opentelemetry-sdk>=1.30,<2; extra == "tracing"']
    assert "opentelemetry-sdk>=1.30,<2" not in _requirements("ordertasks", requires, None).splitlines()
    traced = _requirements("ordertasks", requires, None, ("handler", "checkout", "tracing")).splitlines()
    assert "opentelemetry-sdk>=1.30,<2" in traced and "flask>=3.1,<4" in traced
