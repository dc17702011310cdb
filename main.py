"""Cloud Functions loads ``main.py`` from the source root: the task handler (``handle_task``,
in ``functions/``) and the maintenance entry point (``run_maintenance``, reconcile and sweep
for Cloud Scheduler, in ``producer/``) are both deployed from this source.

In the cloud the settings are checked here, at import, so a half-configured deployment fails
to start (and ``gcloud functions deploy`` reports it) instead of failing every task. Which
deployable this is comes from ``FUNCTION_TARGET``, which Cloud Run functions set.

Every instance of either deployable imports this file, so it imports only what handling a
task needs: ``run_maintenance`` loads the producer and Cloud Tasks' client on its first call
(``producer.maintenance_entry``), which keeps the handler's cold start near a bare function's.
"""

from ordertasks.functions.main import handle_task
from ordertasks.handlers.cloud_readiness import deployable_of, require_cloud_ready
from ordertasks.handlers.config import Settings
from ordertasks.producer.maintenance_entry import run_maintenance

_settings = Settings.from_env()
require_cloud_ready(_settings, deployable_of(_settings))

__all__ = ["handle_task", "run_maintenance"]
