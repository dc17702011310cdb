"""Where a replay from triage goes: the deployed handler, never the operator's shell.

An operator runs ``ordertasks failed replay`` or the console from a laptop whose
environment says nothing reliable about the deployment (``ORDERTASKS_HANDLER_URL`` unset or
pointing at a local stack), so the replay's URL, OIDC audience and dispatcher account come
from, in order:

1. the catalog's ``[handler] url`` (and optional ``audience``): the deployed handler,
   written down once;
2. with ``backend = cloud``: the gen2 function's default URL
   ``https://REGION-PROJECT.cloudfunctions.net/FUNCTION``, the URL ``ordertasks deploy``
   gives the queues and the handler as its audience;
3. locally: the stack record ``ordertasks dev`` writes into its data directory
   (``devstack.json``), naming the handler it started.

Otherwise the replay is refused with a message saying how to name the handler. The queue is
the catalog's for the kind, in this deployment's project and location; never the one the
failed delivery's ``X-CloudTasks-TaskName``/``-QueueName`` headers named (whoever sends a
request to the handler writes those).
"""

from __future__ import annotations

import json
from pathlib import Path

from ordertasks.handlers.config import Catalog, Settings
from ordertasks.handlers.errors import ConfigurationError
from ordertasks.handlers.settings import Backend
from ordertasks.producer.enqueue import HandlerTarget

STACK_RECORD = "devstack.json"


class ReplayTargetUnknown(ConfigurationError):
    """Nothing says where the deployed handler is; the message says how to name it."""


def cloud_function_url(catalog: Catalog) -> str:
    """The gen2 function's default URL in the catalog's project and region."""
    return f"https://{catalog.region}-{catalog.project}.cloudfunctions.net/{catalog.handler_function}"


def stack_record_path(data_dir: Path) -> Path:
    """Where ``ordertasks dev`` records the URLs of the stack it runs."""
    return Path(data_dir) / STACK_RECORD


def write_stack_record(data_dir: Path, handler_url: str, emulator_host: str, console_url: str) -> Path:
    """Record the running local stack (called by ``ordertasks dev``)."""
    path = stack_record_path(data_dir)
    path.write_text(json.dumps({"handler_url": handler_url, "emulator_host": emulator_host,
                                "console_url": console_url}, indent=2) + "\n")
    return path


def _recorded_handler(data_dir: Path) -> str | None:
    try:
        url = json.loads(stack_record_path(data_dir).read_text()).get("handler_url")
    except (OSError, ValueError, AttributeError):
        return None
    return url if isinstance(url, str) and url.startswith(("http://", "https://")) else None


def handler_target(settings: Settings, catalog: Catalog) -> HandlerTarget:
    """The replay target for this deployment (see the module docstring for the order)."""
    dispatcher = catalog.service_account_email("dispatcher", catalog.project)
    configured = catalog.handler.get("url")
    if isinstance(configured, str) and configured:
        return HandlerTarget(configured, str(catalog.handler.get("audience") or configured), dispatcher)
    if settings.backend is Backend.CLOUD:
        url = cloud_function_url(catalog)
        return HandlerTarget(url, url, dispatcher)
    recorded = _recorded_handler(settings.store.data_dir)
    if recorded:
        return HandlerTarget(recorded, recorded, dispatcher)
    raise ReplayTargetUnknown(
        f"cannot tell where the handler runs: no [handler] url in {catalog.source} and no running "
        f"`ordertasks dev` recorded in {stack_record_path(settings.store.data_dir)}; start the stack, pass its "
        f"--data-dir, or set [handler] url")
