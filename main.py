"""Cloud Functions loads ``main.py`` from the source root: the task handler (``handle_task``,
in ``functions/``) and the maintenance entry point (``run_maintenance``, reconcile and sweep
for Cloud Scheduler, in ``producer/``) are both deployed from this source."""

from functions.main import handle_task
from producer.maintenance import run_maintenance

__all__ = ["handle_task", "run_maintenance"]
