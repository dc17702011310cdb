"""The queue part of ``apply`` with the real gcloud against the local Cloud Tasks emulator."""

from __future__ import annotations

import re

from pathlib import Path

from ordertasks.infra.config import DEFAULT_CATALOG, QueueConfig, load_catalog
from ordertasks.infra.deploy import apply, build_plan, gcloud_runner
from tests.deploy.conftest import PROJECT, REGION, target


def tasks_client(endpoint: str):  # type: ignore[no-untyped-def]
    """The official client over REST, anonymous, aimed at the emulator."""
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import tasks_v2

    return tasks_v2.CloudTasksClient(transport="rest", credentials=AnonymousCredentials(),
                                     client_options=ClientOptions(api_endpoint=endpoint))


def assert_queue_matches(client, q: QueueConfig) -> None:  # type: ignore[no-untyped-def]
    """The queue in the API holds exactly the catalog's rate and retry values."""
    queue = client.get_queue(name=f"projects/{PROJECT}/locations/{REGION}/queues/{q.name}")
    assert queue.rate_limits.max_dispatches_per_second == q.max_dispatches_per_second
    assert queue.rate_limits.max_concurrent_dispatches == q.max_concurrent_dispatches
    assert queue.retry_config.max_attempts == q.max_attempts
    assert queue.retry_config.min_backoff.total_seconds() == q.min_backoff_seconds
    assert queue.retry_config.max_backoff.total_seconds() == q.max_backoff_seconds
    assert queue.retry_config.max_doublings == q.max_doublings
    assert queue.retry_config.max_retry_duration.total_seconds() == q.max_retry_duration_seconds


def apply_queues(catalog: Path, env: dict[str, str], endpoint: str) -> list[str]:
    """Run the queue section of apply with gcloud aimed at the emulator; return its output lines."""
    lines: list[str] = []
    run = gcloud_runner({**env, "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDTASKS": endpoint + "/"})
    apply(build_plan(target(catalog), ["queues"]), run, lines.append)
    return lines


def changed_catalog(tmp_path: Path) -> Path:
    """A copy of tasks.toml where the warehouse queue allows 10 attempts and 2/s."""
    text = DEFAULT_CATALOG.read_text(encoding="utf-8")
    head, sep, tail = text.partition("[queues.ordertasks-warehouse]")
    tail = tail.replace("max_attempts = 8", "max_attempts = 10", 1)
    tail = tail.replace("max_dispatches_per_second = 5", "max_dispatches_per_second = 2", 1)
    path = tmp_path / "tasks.toml"
    path.write_text(head + sep + tail, encoding="utf-8")
    return path


def test_first_apply_creates_queues_with_the_catalog_values(emulator: str, gcloud_env: dict[str, str]) -> None:
    lines = apply_queues(DEFAULT_CATALOG, gcloud_env, emulator)

    catalog = load_catalog()
    assert lines[:-1] == [f"[queues] queue {name}: created" for name in catalog.queues]
    assert lines[-1] == f"{len(catalog.queues)} created, 0 updated, 0 unchanged"
    client = tasks_client(emulator)
    for q in catalog.queues.values():
        assert_queue_matches(client, q)


def test_second_apply_reports_no_changes(emulator: str, gcloud_env: dict[str, str]) -> None:
    apply_queues(DEFAULT_CATALOG, gcloud_env, emulator)

    lines = apply_queues(DEFAULT_CATALOG, gcloud_env, emulator)

    assert lines[:-1] == [f"[queues] queue {name}: unchanged" for name in load_catalog().queues]
    assert lines[-1] == "no changes"


def test_changed_config_updates_only_what_changed(emulator: str, gcloud_env: dict[str, str], tmp_path: Path) -> None:
    apply_queues(DEFAULT_CATALOG, gcloud_env, emulator)
    catalog_path = changed_catalog(tmp_path)

    lines = apply_queues(catalog_path, gcloud_env, emulator)

    assert "[queues] queue ordertasks-warehouse: updated (maxDispatchesPerSecond, maxAttempts)" in lines
    assert [line for line in lines if "updated (" in line] == [
        "[queues] queue ordertasks-warehouse: updated (maxDispatchesPerSecond, maxAttempts)"]
    assert lines[-1] == "0 created, 1 updated, 3 unchanged"
    client, changed = tasks_client(emulator), load_catalog(catalog_path)
    for q in changed.queues.values():
        assert_queue_matches(client, q)
    assert apply_queues(catalog_path, gcloud_env, emulator)[-1] == "no changes"


def test_a_retry_duration_round_trips(emulator: str, gcloud_env: dict[str, str], tmp_path: Path) -> None:
    # 0 means "unset" in the API (the queue JSON omits it); a real value must survive describe.
    path = tmp_path / "tasks.toml"
    text = DEFAULT_CATALOG.read_text(encoding="utf-8")
    path.write_text(re.sub(r"max_retry_duration_seconds = \d+", "max_retry_duration_seconds = 3600", text), encoding="utf-8")
    apply_queues(path, gcloud_env, emulator)

    assert apply_queues(path, gcloud_env, emulator)[-1] == "no changes"
    client = tasks_client(emulator)
    for q in load_catalog(path).queues.values():
        assert_queue_matches(client, q)
