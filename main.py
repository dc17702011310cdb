"""Cloud Functions loads ``main.py`` from the source root; the handler lives in ``functions/``.

In the cloud the settings are checked here, at import, so a half-configured deployment fails
to start (and ``gcloud functions deploy`` reports it) instead of failing every task.
"""

from functions.main import handle_task
from handlers.cloud_readiness import require_cloud_ready
from infra.config import Settings

require_cloud_ready(Settings.from_env(), "handler")

__all__ = ["handle_task"]
