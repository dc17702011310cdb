"""functions-framework source of the handler_overhead baseline: a function that reads the
request and answers 200, nothing else."""

from __future__ import annotations

import flask


def bare(request: flask.Request) -> tuple[str, int]:
    """Read the body (as the handler does) and answer 200."""
    request.get_data(cache=False)
    return "", 200
