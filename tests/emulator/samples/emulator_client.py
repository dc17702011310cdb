"""Point ``tasks_v2.CloudTasksClient()``, called with no arguments as Google's samples call it,
at the emulator: the one thing the samples cannot be told on their command line.

``google-cloud-tasks`` reads no endpoint from the environment, and ``CloudTasksClient()`` asks
``google.auth.default()`` for credentials and dials ``cloudtasks.googleapis.com:443`` over TLS.
:func:`install` puts a subclass in ``tasks_v2``'s place whose defaults are the client options
docs/emulator.md prints (an insecure gRPC channel, or ``transport="rest"`` with
``AnonymousCredentials`` and ``api_endpoint``); a client built with any argument is Google's
as it stands (our own checks build theirs that way). The
samples look ``tasks_v2.CloudTasksClient`` up when they call it, so they construct the subclass
without a line of theirs changed. Nothing else of the client is touched.

The emulator is named the way our own wiring reads it: ``CLOUD_TASKS_EMULATOR_HOST``
(``host:port``), over gRPC unless ``ORDERTASKS_TASKS_TRANSPORT=rest``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.cloud import tasks_v2

GOOGLES_CLIENT = tasks_v2.CloudTasksClient


def emulator_options(host: str, transport: str) -> dict[str, Any]:
    """The keyword arguments that reach the emulator at ``host`` (``127.0.0.1:8123``)."""
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials

    if transport == "grpc":
        import grpc  # type: ignore[import-untyped]
        from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

        return {"transport": CloudTasksGrpcTransport(channel=grpc.insecure_channel(host))}
    if transport == "rest":
        return {"transport": "rest", "credentials": AnonymousCredentials(),
                "client_options": ClientOptions(api_endpoint=f"http://{host}")}
    raise ValueError(f"ORDERTASKS_TASKS_TRANSPORT must be grpc or rest, not {transport!r}")


def emulator_client_class(host: str, transport: str) -> type[tasks_v2.CloudTasksClient]:
    """``CloudTasksClient`` whose no-argument construction reaches the emulator at ``host``."""

    class EmulatorCloudTasksClient(GOOGLES_CLIENT):  # type: ignore[misc, valid-type]
        """Google's client; without arguments, the emulator's (a fresh channel per client)."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**(kwargs or emulator_options(host, transport)))

    return EmulatorCloudTasksClient


def install(environ: Mapping[str, str]) -> None:
    """Replace ``tasks_v2.CloudTasksClient`` for this process, from ``environ``'s emulator."""
    host = environ.get("CLOUD_TASKS_EMULATOR_HOST")
    if not host:
        raise RuntimeError("set CLOUD_TASKS_EMULATOR_HOST=host:port to run Google's samples on the emulator")
    tasks_v2.CloudTasksClient = emulator_client_class(  # type: ignore[misc]
        host, environ.get("ORDERTASKS_TASKS_TRANSPORT", "grpc"))
