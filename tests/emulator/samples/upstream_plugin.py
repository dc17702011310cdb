"""pytest plugin for the run of Google's own sample tests (``python/*_test.py``, unchanged):
their ``tasks_v2.CloudTasksClient()`` reaches the emulator named by
``CLOUD_TASKS_EMULATOR_HOST`` (see :mod:`tests.emulator.samples.emulator_client`)."""

from __future__ import annotations

import os

import pytest

from tests.emulator.samples.emulator_client import install


def pytest_configure(config: pytest.Config) -> None:
    """Install the emulator's client before the sample tests are imported."""
    install(os.environ)
