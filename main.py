"""Cloud Functions loads ``main.py`` from the source root; the handler lives in ``functions/``."""

from functions.main import handle_task

__all__ = ["handle_task"]
