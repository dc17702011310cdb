"""What a new handler instance imports: ``main.py`` (the repository's and the one ``ordertasks
deploy`` stages) loads neither Cloud Tasks' client nor the producer until ``run_maintenance``
is called (issue 33: they tripled the handler's cold start), nor OpenTelemetry while tracing
is off, nor ``requests`` (the certificate fetch uses the standard library). Each check runs in a fresh interpreter, since this one has imported everything already."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ordertasks.infra.config import REPO_ROOT
from ordertasks.infra.deploy._source import MAIN

HEAVY = ("google.cloud.tasks_v2", "ordertasks.producer.maintenance", "ordertasks.producer.library",
         "ordertasks.producer.enqueue", "opentelemetry", "requests")
PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
import main
imported = [name for name in {heavy!r} if name in sys.modules]
import flask
app = flask.Flask("probe")
with app.test_request_context("/", method="GET"):
    status = main.run_maintenance(flask.request).status_code
print(json.dumps({{"at_import": imported, "after_call": [n for n in {heavy!r} if n in sys.modules],
                  "status": status}}))
"""


def imports_of(source_dir: Path, tmp_path: Path) -> dict[str, object]:
    """Import ``main`` from ``source_dir`` in a fresh interpreter, then call ``run_maintenance`` once."""
    env = {**os.environ, "ORDERTASKS_BACKEND": "local", "ORDERTASKS_DATA_DIR": str(tmp_path / "data"),
           "ORDERTASKS_OIDC_VERIFY": "true", "ORDERTASKS_LOG_LEVEL": "WARNING",
           "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), str(source_dir)], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_repositorys_main_loads_the_producer_only_when_maintenance_runs(tmp_path: Path) -> None:
    seen = imports_of(REPO_ROOT, tmp_path)
    assert seen["at_import"] == []
    # A GET is refused (405) by the real maintenance endpoint, which the call had to load.
    assert seen["status"] == 405 and "ordertasks.producer.maintenance" in seen["after_call"]  # type: ignore[operator]


def test_the_staged_main_loads_the_producer_only_when_maintenance_runs(tmp_path: Path) -> None:
    staged = tmp_path / "staged"
    staged.mkdir()
    (staged / "main.py").write_text(MAIN, encoding="utf-8")
    seen = imports_of(staged, tmp_path)
    assert seen["at_import"] == [] and seen["status"] == 405
