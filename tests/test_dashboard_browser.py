"""The dashboard in a real browser: Playwright driving Debian's Chromium against real
servers on 127.0.0.1 (see ``dashboard_browser_support``).

Run them alone with ``pytest -m browser``. Every test fails on a console error, an
uncaught script error, a Content-Security-Policy violation (Chromium reports those on the
console) or a failed request. ``DASHBOARD_SCREENSHOTS=docs`` also copies the screenshots
into docs/ for the README.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from dashboard_browser_support import (
    ADMIN_TOKEN,
    CHROMIUM,
    CHROMIUM_ARGS,
    POLL_SECONDS,
    READ_TOKEN,
    Servers,
    browser_missing,
    keep_screenshot,
    with_queue,
)

from asyncqueue import JobQueue, JobStatus
from asyncqueue.dashboard.security import SESSION_COOKIE

_missing = browser_missing()
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(_missing is not None, reason=f"no browser: {_missing}"),
]

if _missing is None:
    from playwright.sync_api import Browser, Page, Request, Response, expect, sync_playwright

#: The issue's bound for a live update, and for the jobs page with 100,000 jobs.
LIVE_SECONDS = 2.0
RENDER_SECONDS = 1.0


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    running = Servers(tmp_path_factory.mktemp("browser") / "queue.db")
    running.start()
    with_queue(running.db, _mixed_run)  # every test may rely on it, whichever run alone
    yield running
    running.stop()


@pytest.fixture(scope="module", autouse=True)
def _short_expect_timeout() -> None:
    expect.set_options(timeout=5_000)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Problems:
    """Everything that went wrong in a page: console errors, script errors, failed requests."""

    def __init__(self) -> None:
        self.found: list[str] = []
        self.allowed_statuses: set[int] = set()

    def watch(self, page: Page) -> Page:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.found.append(f"page error: {error}"))
        page.on("requestfailed", self._failed)
        page.on("response", self._response)
        return page

    def _console(self, message: Any) -> None:
        expected = (
            f"Failed to load resource: the server responded with a status of {status} "
            for status in self.allowed_statuses
        )
        if any(message.text.startswith(text) for text in expected):
            return  # an answer the test asked for, already checked by the response hook
        if message.type in ("error", "warning") or "Content Security Policy" in message.text:
            self.found.append(f"console {message.type}: {message.text}")

    def _failed(self, request: Request) -> None:
        # Leaving a page aborts what it still loads (its event stream, the favicon): that
        # is the browser moving on, not a failure.
        if "ERR_ABORTED" in (request.failure or ""):
            return
        self.found.append(f"request failed: {request.url} {request.failure}")

    def _response(self, response: Response) -> None:
        if response.status >= 400 and response.status not in self.allowed_statuses:
            self.found.append(f"HTTP {response.status}: {response.url}")


@pytest.fixture
def problems() -> Iterator[Problems]:
    seen = Problems()
    yield seen
    assert seen.found == [], "\n".join(seen.found)


def log_in(browser: Browser, problems: Problems, base: str, token: str, **options: Any) -> Page:
    context = browser.new_context(viewport={"width": 1280, "height": 860}, **options)
    context.set_default_timeout(10_000)
    page = problems.watch(context.new_page())
    page.goto(f"{base}/")
    expect(page).to_have_url(f"{base}/login?next=" + _quoted(base))
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    return page


def _quoted(base: str) -> str:
    from urllib.parse import quote, urlsplit

    return quote(urlsplit(base).path + "/", safe="")


def shoot(page: Page, tmp_path: Path, name: str, *, full_page: bool = False) -> Path:
    path = tmp_path / f"dashboard-{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    assert path.stat().st_size > 10_000
    keep_screenshot(path)
    return path


def api(servers: Servers, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    return httpx.request(method, f"{servers.url}/api{path}", headers=headers, **kwargs)


def nav(page: Page, name: str) -> Any:
    """The main navigation's link to ``name`` (the Failed link also shows a count)."""
    menu = page.get_by_role("navigation", name="Main")
    return menu.get_by_role("link", name=re.compile(f"^{name}"))


def stat(page: Page, name: str) -> int:
    return int(page.locator(f'[data-stat="{name}"]').inner_text().replace(",", ""))


# -- 1. the overview -----------------------------------------------------------------------


async def _mixed_run(queue: JobQueue) -> None:
    await queue.enqueue_many(
        {"job_type": job_type, "target_id": f"{job_type}-{i}", "max_retries": 0}
        for job_type in ("email.send", "scrape.page", "report.build")
        for i in range(12)
    )
    for job in await queue.claim("local-1", limit=14):
        await queue.complete(job)
    for job in await queue.claim("local-1", limit=5):
        await queue.fail_attempt(job, "ConnectionError: upstream closed the connection")
    await queue.claim("local-1", limit=2)
    for job in await queue.list_jobs(status="pending", limit=3):
        await queue.cancel_job(job.id)
    await queue.enqueue("report.build", "later", delay=3600)


def test_overview_numbers_equal_the_queue_stats(
    servers: Servers, browser: Browser, problems: Problems, tmp_path: Path
) -> None:
    stats = with_queue(servers.db, lambda q: q.get_queue_stats())
    page = log_in(browser, problems, servers.url, ADMIN_TOKEN)
    for status in JobStatus:
        expect(page.locator(f'[data-stat="{status.value}"]')).to_have_text(
            f"{stats[f'{status.value}_jobs']:,}"
        )
    expect(page.locator('[data-stat="total"]')).to_have_text(f"{stats.total_jobs:,}")
    expect(page.locator('[data-stat="delayed"]')).to_have_text(f"{stats.delayed_jobs:,}")
    expect(page.locator("svg.chart rect.completed").first).to_be_visible()
    assert shoot(page, tmp_path, "overview").exists()
    dark = log_in(browser, problems, servers.url, ADMIN_TOKEN, color_scheme="dark")
    shoot(dark, tmp_path, "overview-dark")


# -- 2. live updates -----------------------------------------------------------------------


def test_a_job_enqueued_through_the_api_appears_without_reload(
    servers: Servers, browser: Browser, problems: Problems
) -> None:
    page = log_in(browser, problems, servers.url, ADMIN_TOKEN)
    pending = stat(page, "pending")
    jobs = page.context.new_page()
    problems.watch(jobs)
    jobs.goto(f"{servers.url}/jobs")
    for watched in (page, jobs):
        watched.evaluate("window.notReloaded = true")
    time.sleep(0.5)  # the event streams are open
    started = time.monotonic()
    created = api(servers, "POST", "/tasks", json={"type": "live.check", "target_id": "new-1"})
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    expect(jobs.locator(f'tr[data-job-id="{job_id}"]')).to_be_visible(timeout=LIVE_SECONDS * 1000)
    expect(page.locator('[data-stat="pending"]')).to_have_text(
        f"{pending + 1:,}", timeout=LIVE_SECONDS * 1000
    )
    assert time.monotonic() - started < LIVE_SECONDS + 0.5
    for watched in (page, jobs):
        assert watched.evaluate("window.notReloaded") is True


# -- 3. filters in the URL -----------------------------------------------------------------


def test_filters_round_trip_through_the_url_and_the_back_button(
    servers: Servers, browser: Browser, problems: Problems, tmp_path: Path
) -> None:
    page = log_in(browser, problems, servers.url, ADMIN_TOKEN)
    nav(page, "Jobs").click()
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible()
    shoot(page, tmp_path, "jobs")
    all_rows = page.locator("tr[data-job-id]").count()
    page.get_by_label("Status").select_option("completed")
    page.get_by_label("Type").select_option("email.send")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(f"{servers.url}/jobs?status=completed&type=email.send&target=")
    rows = page.locator("tr[data-job-id]")
    assert rows.count() > 0
    for row in rows.all():
        expect(row.locator(".status")).to_have_text("completed")
        expect(row.locator("td").nth(1)).to_have_text("email.send")
    page.go_back()
    expect(page).to_have_url(f"{servers.url}/jobs")
    expect(page.locator("tr[data-job-id]")).to_have_count(all_rows)
    page.go_forward()
    expect(page.get_by_label("Status")).to_have_value("completed")
    # The keyboard alone: type a target, Enter submits the form.
    page.get_by_label("Target").fill("email.send-3")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"target=email\.send-3"))
    expect(page.locator("tr[data-job-id]")).to_have_count(1)
    expect(page.locator("tr[data-job-id] .target")).to_have_text("email.send-3")
    shared = page.context.new_page()
    problems.watch(shared)
    shared.goto(f"{servers.url}/jobs?status=failed&type=email.send")
    expect(shared.get_by_label("Status")).to_have_value("failed")
    for row in shared.locator("tr[data-job-id]").all():
        expect(row.locator(".status")).to_have_text("failed")


# -- 4. job detail -------------------------------------------------------------------------


_SITES = itertools.count(1)


async def _twice_failed(queue: JobQueue) -> int:
    # A job type of its own: a claim must take this job, not one another test left pending.
    job_type = f"crawl.site{next(_SITES)}"
    target = "https://example.com/a"
    job_id = await queue.enqueue(job_type, target, max_retries=1, metadata={"depth": 2})
    (job,) = await queue.claim("local-2", limit=1, job_types=(job_type,))
    await queue.fail_attempt(job, "TimeoutError: first attempt timed out after 30 s")
    while not (claimed := await queue.claim("local-2", limit=1, job_types=(job_type,))):
        await queue.clock.sleep(0.01)
    await queue.fail_attempt(claimed[0], "HTTPError: 503 Service Unavailable on the retry")
    return int(job_id)


def test_job_detail_shows_each_attempts_error_and_the_history(
    servers: Servers, browser: Browser, problems: Problems, tmp_path: Path
) -> None:
    job_id = with_queue(servers.db, _twice_failed, retry_base_delay=0.05)
    page = log_in(browser, problems, servers.url, ADMIN_TOKEN)
    page.goto(f"{servers.url}/jobs?status=failed")
    page.get_by_role("link", name=f"#{job_id}", exact=True).click()
    expect(page.get_by_role("heading", name=f"Job #{job_id}")).to_be_visible()
    attempts = page.locator("ol.attempts li")
    expect(attempts).to_have_count(2)
    expect(attempts.nth(0)).to_contain_text("first attempt timed out")
    expect(attempts.nth(1)).to_contain_text("503 Service Unavailable")
    timeline = page.locator("ol.timeline li")
    expect(timeline).to_have_count(5)  # enqueued, claimed, retry scheduled, claimed, failed
    expect(timeline.first).to_contain_text("enqueued")
    expect(timeline.last).to_contain_text("failed")
    expect(page.locator("pre.json").first).to_contain_text('"depth": 2')
    expect(page.get_by_role("button", name="Retry")).to_be_visible()
    shoot(page, tmp_path, "job", full_page=True)


# -- 5. actions and roles ------------------------------------------------------------------


def test_retry_and_cancel_change_the_database_and_a_reader_gets_403(
    servers: Servers, browser: Browser, problems: Problems
) -> None:
    failed = with_queue(servers.db, _twice_failed, retry_base_delay=0.05)
    pending = int(api(servers, "POST", "/tasks", json={"type": "x", "target_id": "c"}).json()["id"])
    page = log_in(browser, problems, servers.url, ADMIN_TOKEN)
    page.goto(f"{servers.url}/jobs/{failed}")
    page.get_by_role("button", name="Retry").click()
    expect(page.get_by_role("status")).to_contain_text("moved back to pending")
    page.goto(f"{servers.url}/jobs/{pending}")
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("status")).to_contain_text("cancelled")
    jobs = with_queue(servers.db, lambda q: q.list_jobs(limit=1000))
    status = {job.id: job.status for job in jobs}
    assert status[failed] is JobStatus.PENDING
    assert status[pending] is JobStatus.CANCELLED

    problems.allowed_statuses.add(403)
    reader = log_in(browser, problems, servers.url, READ_TOKEN)
    cancelled = pending
    for path in (f"/jobs/{cancelled}", "/failed", "/jobs"):
        reader.goto(f"{servers.url}{path}")
        expect(reader.locator("main button")).to_have_count(
            1 if path == "/jobs" else 0  # the jobs page's Filter button
        )
    expect(reader.locator(".role")).to_contain_text("read-only")
    session = next(c["value"] for c in reader.context.cookies() if c["name"] == SESSION_COOKIE)
    for csrf in ("anything", servers.csrf_of(session)):  # a stale token, then the reader's own
        refused = reader.request.post(
            f"{servers.url}/jobs/{cancelled}/retry",
            form={"csrf_token": csrf},
            headers={"origin": servers.url},
        )
        assert refused.status == 403
    assert "read login may not change jobs" in refused.text()
    assert with_queue(servers.db, lambda q: q.get_job(cancelled)).status is JobStatus.CANCELLED


# -- 6. bulk retry ---------------------------------------------------------------------------


async def _fail_many(queue: JobQueue) -> None:
    await queue.enqueue_many(
        {"job_type": "bulk.sync", "target_id": f"b{i}", "max_retries": 0} for i in range(1500)
    )
    while claimed := await queue.claim("bulk-worker", limit=500, job_types=("bulk.sync",)):
        for job in claimed:
            await queue.fail_attempt(job, "KeyError: 'account_id'")


def test_bulk_retry_of_1500_failed_jobs_is_capped_and_reported(
    servers: Servers, browser: Browser, problems: Problems, tmp_path: Path
) -> None:
    with_queue(servers.db, _fail_many)
    before = with_queue(servers.db, lambda q: q.get_queue_stats()).failed_jobs
    page = log_in(browser, problems, servers.url, ADMIN_TOKEN)
    nav(page, "Failed").click()
    expect(page.locator("#failed-total")).to_contain_text(f"{before:,}")
    shoot(page, tmp_path, "failed")
    group = page.locator("tr.group", has_text="KeyError: 'account_id'")
    expect(group).to_contain_text("1,500")
    group.get_by_role("button", name="Retry 1,500").click()
    report = page.locator("#bulk-report")
    expect(report).to_contain_text("Retried 1,000 jobs")
    expect(report).to_contain_text("500 still failed in that group")
    assert with_queue(servers.db, lambda q: q.get_queue_stats()).failed_jobs == before - 1000
    page.locator("tr.group", has_text="KeyError: 'account_id'").get_by_role("button").click()
    expect(page.locator("#bulk-report")).to_contain_text("Retried 500 jobs")
    assert with_queue(servers.db, lambda q: q.get_queue_stats()).failed_jobs == before - 1500


# -- 7. under a prefix, behind a proxy -----------------------------------------------------


@pytest.mark.parametrize("prefix", ["/admin/queue", "/proxy/admin/queue"])
def test_mounted_under_a_prefix_and_behind_a_proxy_no_request_fails(
    servers: Servers, browser: Browser, problems: Problems, prefix: str
) -> None:
    base = f"{servers.mount_url}{prefix}"
    failed = with_queue(servers.db, _twice_failed, retry_base_delay=0.05)
    page = log_in(browser, problems, base, ADMIN_TOKEN)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    for name in ("Jobs", "Failed", "Workers", "Overview"):
        nav(page, name).click()
        expect(page.get_by_role("heading", level=1)).to_contain_text(name)
    nav(page, "Jobs").click()
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(f"{base}/jobs?status=failed&type=&target=")
    page.get_by_role("link", name=f"#{failed}", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Job #{failed}")
    page.get_by_role("button", name="Retry").click()
    expect(page.get_by_role("status")).to_contain_text("moved back to pending")
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{base}/login")
    assert requested
    assert all(url.startswith(base) for url in requested), requested


def test_with_the_event_stream_blocked_pages_poll(
    servers: Servers, browser: Browser, problems: Problems
) -> None:
    base = f"{servers.mount_url}/admin/queue"
    page = log_in(browser, problems, base, ADMIN_TOKEN)
    page.route("**/events", lambda route: route.abort())
    problems.found.clear()
    page.goto(f"{base}/jobs")
    page.evaluate("window.notReloaded = true")
    job_id = with_queue(servers.db, lambda q: q.enqueue("poll.check", "blocked-stream"))
    expect(page.locator(f'tr[data-job-id="{job_id}"]')).to_be_visible(
        timeout=(POLL_SECONDS + LIVE_SECONDS) * 1000
    )
    assert page.evaluate("window.notReloaded") is True
    # The blocked stream's own complaints (htmx logs the EventSource's error event).
    blocked = ("ERR_FAILED", "[object Event]")
    problems.found[:] = [p for p in problems.found if not any(b in p for b in blocked)]


# -- 8. closed by default --------------------------------------------------------------------


def test_without_credentials_the_login_page_or_401_and_cross_site_posts_are_refused(
    servers: Servers, browser: Browser, problems: Problems, tmp_path: Path
) -> None:
    problems.allowed_statuses.update({401, 403})
    context = browser.new_context()
    page = problems.watch(context.new_page())
    page.goto(f"{servers.url}/failed")
    expect(page).to_have_url(f"{servers.url}/login?next=%2Ffailed")
    page.get_by_label("API token").fill("not-a-token")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#login-error")).to_contain_text("not valid")
    shoot(page, tmp_path, "login")
    assert httpx.get(f"{servers.url}/").status_code == 401
    assert httpx.get(f"{servers.url}/events").status_code == 401

    failed = with_queue(servers.db, _twice_failed, retry_base_delay=0.05)
    admin = log_in(browser, problems, servers.url, ADMIN_TOKEN)
    admin.goto(f"{servers.url}/jobs/{failed}")
    token = admin.locator('input[name="csrf_token"]').first.get_attribute("value")
    # A page of another site, in the logged-in browser, posting the right form.
    evil = (
        f'<form method="post" action="{servers.url}/jobs/{failed}/retry">'
        f'<input name="csrf_token" value="{token}"><button>go</button></form>'
    )
    admin.route(
        "http://evil.example/", lambda route: route.fulfill(body=evil, content_type="text/html")
    )
    admin.goto("http://evil.example/")
    with admin.expect_response(f"{servers.url}/jobs/{failed}/retry") as answer:
        admin.get_by_role("button", name="go").click()
    assert answer.value.status in (401, 403)
    assert with_queue(servers.db, lambda q: q.get_job(failed)).status is JobStatus.FAILED


# -- 10. remote workers ------------------------------------------------------------------------


def test_a_remote_worker_appears_on_the_workers_page(
    servers: Servers, browser: Browser, problems: Problems, tmp_path: Path
) -> None:
    now = time.time()
    body = {
        "worker_id": "remote-scraper-1",
        "host": "worker-host-7",
        "pid": 4242,
        "started_at": now - 600,
        "heartbeat_interval": 30,
        "jobs_processed": 1234,
        "jobs_failed": 5,
    }
    assert api(servers, "POST", "/workers/heartbeat", json=body).status_code == 200
    claimed = api(servers, "POST", "/tasks/claim", json={"worker_id": "remote-scraper-1"})
    page = log_in(browser, problems, servers.url, ADMIN_TOKEN)
    nav(page, "Workers").click()
    row = page.locator('tr[data-worker-id="remote-scraper-1"]')
    expect(row).to_contain_text("worker-host-7")
    expect(row).to_contain_text("1,234")
    expect(row).to_contain_text("alive")
    assert claimed.status_code == 200, claimed.text  # the mixed run left jobs pending
    expect(row).to_contain_text(f"#{claimed.json()['id']}")
    shoot(page, tmp_path, "workers")


# -- 9. speed with 100,000 jobs (last: it fills the queue) -----------------------------------


async def _fill(queue: JobQueue) -> None:
    for start in range(0, 100_000, 10_000):
        await queue.enqueue_many(
            {"job_type": f"bulk.type{i % 4}", "target_id": f"fill-{i}"}
            for i in range(start, start + 10_000)
        )


def test_the_jobs_page_renders_in_under_a_second_with_100000_jobs(
    servers: Servers, browser: Browser, problems: Problems
) -> None:
    with_queue(servers.db, _fill)
    assert with_queue(servers.db, lambda q: q.get_queue_stats()).total_jobs > 100_000
    page = log_in(browser, problems, servers.url, ADMIN_TOKEN)
    for path in ("/jobs", "/jobs?status=pending&type=bulk.type2", "/jobs?status=pending"):
        started = time.monotonic()
        page.goto(f"{servers.url}{path}", wait_until="load")
        elapsed = time.monotonic() - started
        expect(page.locator("tr[data-job-id]")).to_have_count(50)
        assert elapsed < RENDER_SECONDS, f"{path} took {elapsed:.2f} s"
    older = page.locator("#older")
    started = time.monotonic()
    older.click()
    expect(page.locator("tr[data-job-id]")).to_have_count(50)
    assert time.monotonic() - started < RENDER_SECONDS
