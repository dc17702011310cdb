"""``run_maintenance`` as the deployed ``main.py`` exports it: a light function that loads
``producer.maintenance`` (and with it the producer and Cloud Tasks' client) on its first call.

The handler and the maintenance entry share one source, so whatever ``main.py`` imports
every handler instance imports too. Cloud Tasks' client and the producer are only needed by
the maintenance entry; importing them at ``main.py``'s import cost the handler's cold start
about three times a bare function's time and memory (issue 33). Importing this module loads
nothing but itself (``tests/functions/test_cold_imports.py`` holds that).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import flask


def run_maintenance(request: flask.Request) -> flask.Response:
    """functions-framework target: ``--entry-point=run_maintenance`` (``producer.maintenance``)."""
    from ordertasks.producer.maintenance import run_maintenance as maintenance

    return maintenance(request)
