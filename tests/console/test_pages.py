"""The console's pages and actions through Flask's test client, over SQLite and a real emulator."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

from google.api_core import exceptions as gexc
from google.cloud import tasks_v2

from ordertasks.handlers.ports import FailedFilter, OrderRecord, OutboxEntry
from ordertasks.infra.console import create_app
from ordertasks.producer.enqueue import task_name
from tests.console.conftest import RECORDED_HANDLER, ConsoleUnderTest, failure


def record(cut: ConsoleUnderTest, order_id: str, kind: str = "notify_warehouse", **changes: str) -> str:
    entry = cut.store.failed.record_failure(failure(order_id, kind, catalog=cut.console.catalog, **changes))
    return entry.id


def test_every_page_renders_with_the_catalog(cut: ConsoleUnderTest) -> None:
    catalog = cut.console.catalog
    overview = cut.client.get("/")
    assert overview.status_code == 200
    assert all(kind in overview.text for kind in catalog.kinds)
    assert "<svg" in overview.text and "failed tasks per hour" in overview.text
    queues = cut.client.get("/queues")
    assert queues.status_code == 200
    assert queues.text.count('class="state running"') == len(catalog.queues)
    assert cut.client.get("/orders").status_code == 200
    assert cut.client.get("/failed").status_code == 200


def test_failed_list_filters_and_detail_escape_untrusted_text(cut: ConsoleUnderTest) -> None:
    evil = record(cut, "ord-evil", error="<script>alert('x')</script> & more")
    record(cut, "ord-other", "generate_invoice", error_type="DependencyUnavailable")
    listing = cut.client.get("/failed?kind=notify_warehouse")
    assert evil in listing.text and "ord-other" not in listing.text
    assert "<strong>1</strong> matching" in listing.text
    assert "ord-other" in cut.client.get("/failed?error_type=DependencyUnavailable").text
    detail = cut.client.get(f"/failed/{evil}")
    assert detail.status_code == 200
    assert "<script>alert" not in detail.text and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more" in detail.text


def test_bad_filters_and_cursors_are_400_with_a_message(cut: ConsoleUnderTest) -> None:
    bad_date = cut.client.get("/failed?from=yesterday")
    assert bad_date.status_code == 400 and "from must be a date like" in bad_date.text
    bad_kind = cut.client.get("/failed?kind=nope")
    assert bad_kind.status_code == 400 and "kind must be one of the catalog" in bad_kind.text
    bad_cursor = cut.client.get("/failed?cursor=zzz")
    assert bad_cursor.status_code == 400 and "start again from the first page" in bad_cursor.text
    assert cut.client.get("/failed/none:such").status_code == 404


def test_post_without_the_csrf_token_is_refused_and_changes_nothing(cut: ConsoleUnderTest) -> None:
    failed_id = record(cut, "ord-csrf")
    no_token = cut.client.post(f"/failed/{failed_id}/resolve", data={"note": "x"})
    assert no_token.status_code == 400 and "security token" in no_token.text
    cut.token(f"/failed/{failed_id}/resolve")            # the session now has a token...
    wrong = cut.client.post(f"/failed/{failed_id}/resolve", data={"note": "x", "csrf_token": "forged"})
    assert wrong.status_code == 400                          # ...but not this one
    replay = cut.client.post(f"/failed/{failed_id}/replay")
    assert replay.status_code == 400
    assert cut.client.post("/queues/ordertasks-email/pause").status_code == 400
    entry = cut.store.failed.get_failed(failed_id)
    assert (entry.status, entry.note, entry.replays) == ("open", None, 0)
    state = cut.console.tasks.get_queue(name=_queue(cut, "ordertasks-email")).state
    assert state == tasks_v2.Queue.State.RUNNING


def test_a_post_from_another_origin_is_refused(cut: ConsoleUnderTest) -> None:
    failed_id = record(cut, "ord-origin")
    token = cut.token(f"/failed/{failed_id}/resolve")
    answer = cut.client.post(f"/failed/{failed_id}/resolve", data={"note": "x", "csrf_token": token},
                             headers={"Origin": "http://evil.example"})
    assert answer.status_code == 403
    assert cut.store.failed.get_failed(failed_id).status == "open"


def test_a_foreign_host_header_is_refused(cut: ConsoleUnderTest) -> None:
    assert cut.client.get("/", headers={"Host": "evil.example"}).status_code == 400


def test_resolve_needs_a_note_and_keeps_it(cut: ConsoleUnderTest) -> None:
    failed_id = record(cut, "ord-resolve")
    token = cut.token(f"/failed/{failed_id}/resolve")
    empty = cut.client.post(f"/failed/{failed_id}/resolve", data={"note": " ", "csrf_token": token},
                            follow_redirects=True)
    assert "write a note" in empty.text and cut.store.failed.get_failed(failed_id).status == "open"
    done = cut.client.post(f"/failed/{failed_id}/resolve", data={"note": "refunded <b>", "by": "ana",
                                                                 "csrf_token": token}, follow_redirects=True)
    assert "resolved by ana" in done.text and "refunded &lt;b&gt;" in done.text
    entry = cut.store.failed.get_failed(failed_id)
    assert (entry.status, entry.resolved_by, entry.note) == ("resolved", "ana", "refunded <b>")


def _queue(cut: ConsoleUnderTest, name: str) -> str:
    cat = cut.console.catalog
    return f"projects/{cat.project}/locations/{cat.region}/queues/{name}"


def _replayed_task(cut: ConsoleUnderTest, failed_id: str) -> tasks_v2.Task:
    entry = cut.store.failed.get_failed(failed_id)
    name = f"{entry.task_name}-r{entry.replays}"
    return cut.console.tasks.get_task(request={"name": name, "response_view": tasks_v2.Task.View.FULL})


def test_replay_goes_to_the_recorded_handler_in_the_original_queue(cut: ConsoleUnderTest) -> None:
    cut.console.tasks.pause_queue(name=_queue(cut, "ordertasks-warehouse"))   # keep the replay in the queue
    try:
        failed_id = record(cut, "ord-replay")
        confirm = cut.client.get(f"/failed/{failed_id}/replay")
        assert "Replay now" in confirm.text and cut.store.failed.get_failed(failed_id).status == "open"
        token = cut.token(f"/failed/{failed_id}/replay")
        done = cut.client.post(f"/failed/{failed_id}/replay", data={"csrf_token": token}, follow_redirects=True)
        assert "replay created" in done.text
        entry = cut.store.failed.get_failed(failed_id)
        assert (entry.status, entry.replays) == ("replayed", 1)
        task = _replayed_task(cut, failed_id)
        assert task.http_request.url == RECORDED_HANDLER            # not Settings.tasks.handler_url
        assert task.http_request.oidc_token.audience == RECORDED_HANDLER
        assert task.name.startswith(_queue(cut, "ordertasks-warehouse") + "/tasks/")
    finally:
        cut.console.tasks.resume_queue(name=_queue(cut, "ordertasks-warehouse"))


def test_bulk_replay_confirms_then_replays_the_filtered_set(cut: ConsoleUnderTest) -> None:
    cut.console.tasks.pause_queue(name=_queue(cut, "ordertasks-invoice"))
    try:
        ids = [record(cut, f"ord-bulk-{i}", "generate_invoice", error_type="BulkErr") for i in range(3)]
        record(cut, "ord-bulk-other", "generate_invoice", error_type="OtherErr")
        confirm = cut.client.get("/failed/bulk-replay?kind=generate_invoice&error_type=BulkErr")
        assert "Replay 3 task(s)" in confirm.text
        assert all(cut.store.failed.get_failed(i).status == "open" for i in ids)
        token = cut.token("/failed/bulk-replay?kind=generate_invoice&error_type=BulkErr")
        done = cut.client.post("/failed/bulk-replay", data={"csrf_token": token, "id": ids, "kind": "generate_invoice",
                                                            "error_type": "BulkErr"}, follow_redirects=True)
        assert "bulk replay: 3 of 3 replayed" in done.text
        assert [cut.store.failed.get_failed(i).status for i in ids] == ["replayed"] * 3
        assert cut.store.failed.get_failed("ord-bulk-other:generate_invoice").status == "open"
        assert cut.store.failed.count_failed(FailedFilter(error_type="BulkErr", status="replayed")) == 3
    finally:
        cut.console.tasks.resume_queue(name=_queue(cut, "ordertasks-invoice"))


def _order_with_future_tasks(cut: ConsoleUnderTest, order_id: str, email: str) -> list[str]:
    cat, now = cut.console.catalog, datetime.now(UTC)
    cut.store.orders.create_order(OrderRecord(order_id, "created", {"customer": {"name": "Ada", "email": email},
                                                             "totals": {"total": "10.00", "currency": "EUR"}}, now))
    entries = []
    for kind, config in cat.kinds.items():
        name = task_name(cat.project, cat.region, config.queue, order_id, kind)
        later = now + timedelta(days=1)
        cut.console.tasks.create_task(parent=name.split("/tasks/")[0], task=tasks_v2.Task(
            name=name, schedule_time=later, http_request=tasks_v2.HttpRequest(url=RECORDED_HANDLER, body=b"{}")))
        entries.append(OutboxEntry(order_id, kind, name, later, "pending", now))
    cut.store.orders.mark_paid(order_id, "ch_1", entries, now)
    for entry in entries:
        cut.store.orders.mark_scheduled(order_id, entry.kind, now)
    return [e.task_name for e in entries]


def test_orders_search_by_email_and_id_and_the_timeline(cut: ConsoleUnderTest) -> None:
    _order_with_future_tasks(cut, "ord-search-1", "Grace@Example.com")
    by_email = cut.client.get("/orders?q=Grace@Example.com")
    assert "1 order(s)" in by_email.text and "ord-search-1" in by_email.text
    by_id = cut.client.get("/orders?q=ord-search-1")
    assert by_id.status_code == 302 and by_id.headers["Location"].endswith("/orders/ord-search-1")
    page = cut.client.get("/orders/ord-search-1")
    assert page.text.count('class="outcome scheduled"') == len(cut.console.catalog.kinds)
    assert "0 order(s)" in cut.client.get("/orders?q=nobody@example.com").text


def test_cancel_confirms_then_deletes_the_pending_tasks(cut: ConsoleUnderTest) -> None:
    names = _order_with_future_tasks(cut, "ord-cancel-1", "c@example.com")
    confirm = cut.client.get("/orders/ord-cancel-1/cancel")
    assert f"Cancel {len(names)} task(s)" in confirm.text
    cut.console.tasks.get_task(name=names[0])                   # still there after the confirmation page
    token = cut.token("/orders/ord-cancel-1/cancel")
    done = cut.client.post("/orders/ord-cancel-1/cancel", data={"csrf_token": token}, follow_redirects=True)
    cancelled = next(line for line in done.text.splitlines() if line.endswith(": cancelled</li>"))
    assert all(kind in cancelled for kind in cut.console.catalog.kinds)
    for name in names:
        try:
            cut.console.tasks.get_task(name=name)
        except gexc.NotFound:
            continue
        raise AssertionError(f"{name} still exists after cancel")
    assert done.text.count('class="outcome cancelled"') == len(names)


def test_queue_pause_resume_and_purge_need_confirmation(cut: ConsoleUnderTest) -> None:
    queue = "ordertasks-analytics"
    assert "Pause ordertasks-analytics" in cut.client.get(f"/queues/{queue}/pause").text
    token = cut.token(f"/queues/{queue}/pause")
    paused = cut.client.post(f"/queues/{queue}/pause", data={"csrf_token": token}, follow_redirects=True)
    assert "paused, now PAUSED" in paused.text
    resumed = cut.client.post(f"/queues/{queue}/resume", data={"csrf_token": token}, follow_redirects=True)
    assert "resumed, now RUNNING" in resumed.text
    refused = cut.client.post(f"/queues/{queue}/purge", data={"csrf_token": token, "confirm_name": "x"},
                              follow_redirects=True)
    assert "not purged: type the queue" in refused.text
    purged = cut.client.post(f"/queues/{queue}/purge", data={"csrf_token": token, "confirm_name": queue},
                             follow_redirects=True)
    assert "purged" in purged.text
    assert cut.client.get("/queues/nope/pause").status_code == 404


def test_without_credentials_every_page_says_what_to_run() -> None:
    app = create_app(None).test_client()
    for path in ("/", "/failed", "/orders/x"):
        page = app.get(path)
        assert page.status_code == 503
        assert "gcloud auth application-default login" in page.text and "Traceback" not in page.text


def test_failed_pages_follow_the_next_link_within_the_filter(cut: ConsoleUnderTest) -> None:
    ids = {record(cut, f"ord-page-{i:02d}", "record_analytics") for i in range(60)}
    record(cut, "ord-page-other", "generate_invoice")
    first = cut.client.get("/failed?kind=record_analytics")
    assert "<strong>60</strong> matching" in first.text
    link = re.search(r'href="(/failed\?[^"]*cursor=[^"]+)">Next page', first.text)
    assert link, "a next-page link"
    second = cut.client.get(html.unescape(link.group(1)))
    shown = set(re.findall(r'href="/failed/(ord-page-\d+:record_analytics)"', first.text + second.text))
    assert shown == ids and "Next page" not in second.text and "first page" in second.text
