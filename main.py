"""Cloud Functions loads ``main.py`` from the source root: the task handler (``handle_task``,
in ``functions/``) and the maintenance entry point (``run_maintenance``, reconcile and sweep
for Cloud Scheduler, in ``producer/``) are both deployed from this source.

In the cloud the settings are checked here, at import, so a half-configured deployment fails
to start (and ``gcloud functions deploy`` reports it) instead of failing every task.
"""

from functions.main import handle_task
from handlers.cloud_readiness import require_cloud_ready
from handlers.config import Settings
from producer.maintenance import run_maintenance

require_cloud_ready(Settings.from_env(), "handler")

__all__ = ["handle_task", "run_maintenance"]
