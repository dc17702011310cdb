"""Tracing off (the default) adds nothing to the handler's path: OpenTelemetry is never imported."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from ordertasks.handlers.settings import Settings, TracingSettings
from ordertasks.handlers.tracing import NO_TRACING, tracing_for
from ordertasks.infra.config import REPO_ROOT

DELIVER_ONE = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import flask
    from ordertasks.functions.main import build_handler
    from ordertasks.handlers.backends.sqlite import SqliteStore
    from ordertasks.handlers.contract import encode
    from ordertasks.handlers.settings import OidcSettings, Settings, StoreSettings
    from tests.effects.orders import eur_order
    from tests.support.orders import store_paid_order

    tmp = Path(sys.argv[1])
    settings = Settings.from_env({"ORDERTASKS_DATA_DIR": str(tmp), "ORDERTASKS_OIDC_VERIFY": "false"})
    store = SqliteStore(settings.store.sqlite_file)
    store_paid_order(store, "ord-1", eur_order())
    handler = build_handler(settings, stores=store)
    with flask.Flask("t").test_request_context("/", method="POST", data=encode("record_analytics", "ord-1"),
                                               headers={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}):
        status = handler(flask.request).status_code
    print(json.dumps({"status": status, "otel": sorted(m for m in sys.modules if m.startswith("opentelemetry"))}))
""")


def test_handling_a_delivery_with_tracing_off_imports_no_opentelemetry(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-c", DELIVER_ONE, str(tmp_path)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=True)
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer == {"status": 200, "otel": []}


def test_tracing_is_on_only_when_an_exporter_is_named() -> None:
    assert not Settings.from_env({}).tracing.enabled
    assert not Settings.from_env({"OTEL_TRACES_EXPORTER": "none"}).tracing.enabled
    assert not Settings.from_env({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}).tracing.enabled
    assert Settings.from_env({"OTEL_TRACES_EXPORTER": "otlp,console"}).tracing == TracingSettings(("otlp", "console"))
    assert tracing_for(Settings()) is NO_TRACING
