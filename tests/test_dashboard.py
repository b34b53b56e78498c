"""The dashboard over HTTP, in process: every page, who may see and act, CSRF, headers,
prefixes and proxies, bulk retry, keyset pages, the shared snapshot and the live stream.

The browser tests (``test_dashboard_browser.py``) drive the same pages in Chromium.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request

from asyncqueue import ConfigurationError, JobQueue, JobStatus, ManualClock
from asyncqueue.dashboard import dashboard
from asyncqueue.dashboard.actions import BULK_RETRY_CAP
from asyncqueue.dashboard.live import ChangeSignal, change_stream
from asyncqueue.dashboard.security import CONTENT_SECURITY_POLICY, SESSION_COOKIE, DashboardAuth
from asyncqueue.server import ApiTokens, create_app
from asyncqueue.storage import sqlite_sql

TOKENS = ApiTokens.parse("admin adm-token\nworker wrk-token\nread rd-token")
HTML = {"accept": "text/html"}
SAME_ORIGIN = {"sec-fetch-site": "same-origin", "origin": "http://dash"}


@pytest.fixture
async def app(queue: JobQueue) -> AsyncIterator[FastAPI]:
    app = create_app(queue, tokens=TOKENS, sweep=False)
    async with app.router.lifespan_context(app):
        yield app


def client(app: Starlette | FastAPI, **kwargs: object) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, **kwargs)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://dash")


@asynccontextmanager
async def logged_in(app: Starlette | FastAPI, token: str) -> AsyncIterator[httpx.AsyncClient]:
    async with client(app) as c:
        response = await c.post("/login", data={"token": token, "next": "/"}, headers=SAME_ORIGIN)
        assert response.status_code == 303, response.text
        yield c


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def own_board(app: Starlette | FastAPI) -> Any:
    """The dashboard mounted in ``app``."""
    return next(
        route.app.state.dashboard  # type: ignore[attr-defined]
        for route in app.routes
        if hasattr(getattr(getattr(route, "app", None), "state", None), "dashboard")
    )


def own_csrf(app: Starlette | FastAPI, session: str) -> str:
    """The CSRF token the dashboard of ``app`` expects from the session cookie ``session``."""
    board = own_board(app)
    cookie = f"{SESSION_COOKIE}={session}".encode()
    viewer = board.auth.viewer(Request({"type": "http", "headers": [(b"cookie", cookie)]}))
    assert viewer is not None
    return str(viewer.csrf)


async def fail_jobs(queue: JobQueue, n: int, job_type: str = "scrape", error: str = "boom") -> None:
    await queue.enqueue_many(
        {"job_type": job_type, "target_id": f"{job_type}-{i}", "max_retries": 0} for i in range(n)
    )
    while claimed := await queue.claim("w", limit=500, job_types=(job_type,)):
        await asyncio.gather(*(queue.fail_attempt(job, error) for job in claimed))


# -- pages -------------------------------------------------------------------------------


async def test_every_page_renders_for_an_admin(app: FastAPI, queue: JobQueue) -> None:
    await queue.enqueue("email", "a@example.com", metadata={"subject": "hi"})
    await fail_jobs(queue, 2)
    async with logged_in(app, "adm-token") as c:
        for path in ("/", "/jobs", "/jobs/1", "/failed", "/workers", "/jobs?status=failed"):
            response = await c.get(path)
            assert response.status_code == 200, (path, response.text)
            assert response.headers["content-type"].startswith("text/html")
        assert (await c.get("/jobs/999999")).status_code == 404


async def test_overview_shows_the_stats_and_the_chart(app: FastAPI, queue: JobQueue) -> None:
    await queue.enqueue_many({"job_type": "email", "target_id": str(i)} for i in range(7))
    await fail_jobs(queue, 3)
    stats = await queue.get_queue_stats()
    async with logged_in(app, "adm-token") as c:
        page = (await c.get("/")).text
    for status in ("pending", "failed", "completed"):
        shown = re.search(rf'data-stat="{status}">([\d,]+)<', page)
        assert shown is not None
        assert int(shown.group(1).replace(",", "")) == stats[f"{status}_jobs"]
    assert '<svg class="chart"' in page
    assert "<style" not in page
    assert " style=" not in page


async def test_job_detail_shows_each_attempts_error_and_the_history(
    app: FastAPI, queue: JobQueue, clock: ManualClock
) -> None:
    job_id = await queue.enqueue("scrape", "t", max_retries=1, metadata={"url": "https://x"})
    (job,) = await queue.claim("w1", limit=1)
    await queue.fail_attempt(job, "first <b>error</b>")
    clock.advance(10)
    (job,) = await queue.claim("w1", limit=1)
    await queue.fail_attempt(job, "second error")
    async with logged_in(app, "adm-token") as c:
        page = (await c.get(f"/jobs/{job_id}")).text
    assert "first &lt;b&gt;error&lt;/b&gt;" in page, "errors are escaped"
    assert "second error" in page
    for event in ("enqueued", "claimed", "retry scheduled", "failed"):
        assert event in page
    assert "&#34;url&#34;" in page
    assert 'action="/jobs/1/retry"' in page
    assert "/cancel" not in page


async def test_jobs_filters_and_keyset_pages(app: FastAPI, queue: JobQueue) -> None:
    await queue.enqueue_many(
        {"job_type": "a" if i % 2 else "b", "target_id": f"t{i}"} for i in range(120)
    )
    async with logged_in(app, "adm-token") as c:
        page = (await c.get("/jobs?type=a")).text
        ids = [int(i) for i in re.findall(r'data-job-id="(\d+)"', page)]
        assert len(ids) == 50
        assert ids == sorted(ids, reverse=True)
        assert all(i % 2 == 0 for i in ids), "type a jobs have even ids here"
        assert "60 matching jobs" in page
        older = re.search(r'href="([^"]+)" rel="next"', page)
        assert older is not None
        second = (await c.get(older.group(1).replace("&amp;", "&"))).text
        more = [int(i) for i in re.findall(r'data-job-id="(\d+)"', second)]
        assert max(more) < min(ids)
        assert len(more) == 10
        assert 'rel="next"' not in second
        target = (await c.get("/jobs?target=t7")).text
        assert re.findall(r'data-job-id="(\d+)"', target) == ["8"]
        bad = await c.get("/jobs?status=nope&before=x")
        assert bad.status_code == 200
        assert "unknown status" in bad.text


def _plan(conn: Any, statement: str, params: dict[str, Any]) -> list[str]:
    return [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {statement}", params)]


@pytest.mark.sqlite_only  # reads SQLite's query plans and counts its virtual machine steps
async def test_a_page_of_jobs_reads_ordered_index_ranges_and_costs_the_same_on_any_size(
    queue: JobQueue,
) -> None:
    import sqlite3

    params: dict[str, Any] = {"before_id": 10**9, "limit": 51}
    params.update({f"s{i}": "pending" for i in range(3)} | {"t0": "a", "t1": "b", "t2": "c"})
    conn = sqlite3.connect(queue.path)
    try:
        unfiltered = _plan(conn, sqlite_sql.list_jobs_sql(False, False, before=True), params)
        assert unfiltered == ["SEARCH jobs USING INTEGER PRIMARY KEY (rowid<?)"]
        ranged = _plan(conn, sqlite_sql.list_ranges_sql(3, before=True), params)
        searches = [line for line in ranged if line.startswith("SEARCH")]
        assert len(searches) == 3
        assert all("jobs_status_type (status=? AND job_type=? AND rowid<?)" in s for s in searches)

        def steps(statement: str) -> int:
            counted = 0

            def count() -> int:
                nonlocal counted
                counted += 1
                return 0

            conn.set_progress_handler(count, 100)
            conn.execute(statement, params).fetchall()
            conn.set_progress_handler(None, 100)
            return counted

        # Unfiltered; one status and type; one status across two types (how the storage
        # lists a status alone). Sorting the matching jobs instead took 20 times longer on
        # the larger table.
        statements = [
            sqlite_sql.list_jobs_sql(False, False, before=True),
            sqlite_sql.list_ranges_sql(1, before=True),
            sqlite_sql.list_ranges_sql(2, before=True),
        ]
        costs = []
        for total in (2_000, 40_000):
            have = (await queue.get_queue_stats()).total_jobs
            await queue.enqueue_many(
                {"job_type": "ab"[i % 2], "target_id": f"t{i}"} for i in range(have, total)
            )
            conn.execute("SELECT 1").fetchall()  # a fresh read snapshot
            costs.append([steps(statement) for statement in statements])
        for small, large in zip(*costs, strict=True):
            assert large <= small * 1.5 + 5, costs
    finally:
        conn.close()


async def test_listing_by_status_alone_merges_each_types_range(queue: JobQueue) -> None:
    await queue.enqueue_many({"job_type": f"type{i % 5}", "target_id": f"t{i}"} for i in range(300))
    await fail_jobs(queue, 7, "zzz")
    listed = await queue.list_jobs(status=["pending", "failed"], limit=400)
    assert [j.id for j in listed] == list(range(307, 0, -1))
    page = await queue.list_jobs(status="pending", before_id=101, limit=10)
    assert [j.id for j in page] == list(range(100, 90, -1))
    assert [j.id for j in await queue.list_jobs(job_type="type3", limit=2)] == [299, 294]


async def test_workers_page_lists_workers_and_what_they_hold(app: FastAPI, queue: JobQueue) -> None:
    from asyncqueue.storage.base import WorkerRecord

    now = queue.clock.now()
    await queue.record_worker(WorkerRecord("remote-7", "hostx", 42, now, now, 5.0, 12, 3))
    await queue.enqueue("scrape", "held")
    (job,) = await queue.claim("remote-7", limit=1)
    async with logged_in(app, "rd-token") as c:
        page = (await c.get("/workers")).text
    assert "remote-7" in page
    assert "hostx" in page
    assert f"#{job.id}" in page


# -- who may see and act -----------------------------------------------------------------


async def test_without_credentials_a_browser_gets_the_login_form_and_a_script_401(
    app: FastAPI,
) -> None:
    async with client(app) as c:
        page = await c.get("/jobs?status=failed", headers=HTML)
        assert page.status_code == 303
        assert page.headers["location"] == "/login?next=%2Fjobs%3Fstatus%3Dfailed"
        assert (await c.get("/login")).status_code == 200
        script = await c.get("/")
        assert script.status_code == 401
        assert script.headers["www-authenticate"].startswith("Basic")
        assert (await c.get("/events")).status_code == 401
        assert (await c.post("/jobs/1/retry", data={})).status_code == 401


async def test_basic_and_bearer_take_the_api_tokens(app: FastAPI) -> None:
    basic = base64.b64encode(b"anyone:rd-token").decode()
    async with client(app) as c:
        assert (await c.get("/", headers={"authorization": f"Basic {basic}"})).status_code == 200
        assert (await c.get("/", headers={"authorization": "Bearer adm-token"})).status_code == 200
        wrong = base64.b64encode(b"x:nope").decode()
        assert (await c.get("/", headers={"authorization": f"Basic {wrong}"})).status_code == 401


async def test_login_refuses_bad_and_worker_tokens_and_sets_a_signed_session(
    app: FastAPI,
) -> None:
    async with client(app) as c:
        bad = await c.post("/login", data={"token": "nope"}, headers=SAME_ORIGIN)
        assert bad.status_code == 401
        assert "not valid" in bad.text
        worker = await c.post("/login", data={"token": "wrk-token"}, headers=SAME_ORIGIN)
        assert worker.status_code == 403
        good = await c.post(
            "/login",
            data={"token": "adm-token", "next": "https://evil.example/"},
            headers=SAME_ORIGIN,
        )
        assert good.status_code == 303
        assert good.headers["location"] == "/"
        cookie = good.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        assert "adm-token" not in cookie
        value = c.cookies[SESSION_COOKIE]
        forged = value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB")
        c.cookies.set(SESSION_COOKIE, forged)
        assert (await c.get("/")).status_code == 401
        cross = await c.post(
            "/login", data={"token": "adm-token"}, headers={"origin": "http://evil"}
        )
        assert cross.status_code == 403


async def test_retry_and_cancel_change_the_database(app: FastAPI, queue: JobQueue) -> None:
    await fail_jobs(queue, 1)
    pending = await queue.enqueue("email", "x")
    async with logged_in(app, "adm-token") as c:
        token = csrf_of((await c.get("/jobs/1")).text)
        done = await c.post("/jobs/1/retry", data={"csrf_token": token}, headers=SAME_ORIGIN)
        assert done.status_code == 303
        assert done.headers["location"] == "/jobs/1?done=retried"
        cancelled = await c.post(
            f"/jobs/{pending}/cancel", data={"csrf_token": token}, headers=SAME_ORIGIN
        )
        assert cancelled.status_code == 303
    assert (await queue.get_job(1)).status is JobStatus.PENDING  # type: ignore[union-attr]
    assert (await queue.get_job(pending)).status is JobStatus.CANCELLED  # type: ignore[union-attr]


async def test_a_read_login_sees_no_buttons_and_gets_403(app: FastAPI, queue: JobQueue) -> None:
    await fail_jobs(queue, 2)
    async with logged_in(app, "adm-token") as admin:
        admin_token = csrf_of((await admin.get("/failed")).text)
    async with logged_in(app, "rd-token") as c:
        for path in ("/jobs/1", "/failed"):
            page = (await c.get(path)).text
            assert 'method="post" action="/jobs' not in page
            assert "csrf_token" not in page
            assert "read-only" in page
        for token in (admin_token, "x"):
            refused = await c.post("/jobs/1/retry", data={"csrf_token": token}, headers=SAME_ORIGIN)
            assert refused.status_code == 403
        # With the reader's own, valid CSRF token: the role alone refuses.
        own = own_csrf(app, c.cookies[SESSION_COOKIE])
        for path in ("/jobs/1/retry", "/jobs/2/cancel", "/failed/retry"):
            refused = await c.post(path, data={"csrf_token": own}, headers=SAME_ORIGIN)
            assert refused.status_code == 403
            assert "read login may not change jobs" in refused.text
    assert (await queue.get_job(1)).status is JobStatus.FAILED  # type: ignore[union-attr]


async def test_read_only_dashboard_makes_admins_readers(queue: JobQueue) -> None:
    app = dashboard(queue, tokens=TOKENS, read_only=True)
    await fail_jobs(queue, 1)
    async with client(app) as c:
        page = await c.get("/jobs/1", headers={"authorization": "Bearer adm-token"})
        assert "/retry" not in page.text


async def test_csrf_cross_site_and_missing_tokens_are_refused(
    app: FastAPI, queue: JobQueue
) -> None:
    await fail_jobs(queue, 1)
    async with logged_in(app, "adm-token") as c:
        token = csrf_of((await c.get("/jobs/1")).text)
        for headers, data in (
            ({"sec-fetch-site": "cross-site"}, {"csrf_token": token}),
            ({"sec-fetch-site": "same-site"}, {"csrf_token": token}),
            ({"origin": "https://evil.example"}, {"csrf_token": token}),
            ({"origin": "null"}, {"csrf_token": token}),
            (SAME_ORIGIN, {}),
            (SAME_ORIGIN, {"csrf_token": token[:-2] + "xx"}),
        ):
            response = await c.post("/jobs/1/retry", data=data, headers=headers)
            assert response.status_code == 403, (headers, data)
        async with logged_in(app, "adm-token") as other:
            assert csrf_of((await other.get("/jobs/1")).text) != token, "bound to the session"
    assert (await queue.get_job(1)).status is JobStatus.FAILED  # type: ignore[union-attr]


async def test_behind_a_proxy_that_rewrites_host_a_same_origin_browser_may_act(
    app: FastAPI, queue: JobQueue
) -> None:
    # nginx's default passes the upstream's address as Host: Origin names the public site.
    await fail_jobs(queue, 2)
    public = {"sec-fetch-site": "same-origin", "origin": "https://queue.example.com"}
    async with client(app) as c:
        login = await c.post("/login", data={"token": "adm-token"}, headers=public)
        assert login.status_code == 303, login.text
        token = csrf_of((await c.get("/jobs/1")).text)
        done = await c.post("/jobs/1/retry", data={"csrf_token": token}, headers=public)
        assert done.headers["location"] == "/jobs/1?done=retried"
        for refused in ("cross-site", "same-site"):
            headers = {**public, "sec-fetch-site": refused}
            answer = await c.post("/jobs/2/retry", data={"csrf_token": token}, headers=headers)
            assert answer.status_code == 403
    assert (await queue.get_job(1)).status is JobStatus.PENDING  # type: ignore[union-attr]
    assert (await queue.get_job(2)).status is JobStatus.FAILED  # type: ignore[union-attr]


async def test_security_headers_on_every_response(app: FastAPI) -> None:
    async with logged_in(app, "adm-token") as c:
        for path in ("/", "/login", "/static/dashboard.css", "/jobs/12345", "/nowhere"):
            response = await c.get(path)
            assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            assert response.headers["x-robots-tag"].startswith("noindex")
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["referrer-policy"] == "same-origin"


async def test_security_headers_on_refusals_redirects_and_server_errors(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with client(app, raise_app_exceptions=False) as c:
        answers = [
            await c.get("/", headers=HTML),  # 303 to the login form
            await c.get("/"),  # 401
            await c.get("/events"),  # 401
            await c.post("/jobs/1/retry", headers={"sec-fetch-site": "cross-site"}),  # 403
            await c.post("/login", content=b"x" * 70_000, headers=SAME_ORIGIN),  # 413
            await c.put("/login"),  # 405
        ]
        board = own_board(app)

        async def broken() -> None:
            raise RuntimeError("the database went away")

        monkeypatch.setattr(board.snapshot, "counts", broken)
        answers.append(await c.get("/", headers={"authorization": "Bearer adm-token"}))
        statuses = [answer.status_code for answer in answers]
        assert statuses == [303, 401, 401, 403, 413, 405, 500]
        for answer in answers:
            assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            assert answer.headers["x-robots-tag"].startswith("noindex")
        assert "the database went away" not in answers[-1].text


async def test_the_session_cookie_is_secure_over_https_and_logout_clears_it(
    queue: JobQueue,
) -> None:
    app = dashboard(queue, tokens=TOKENS)
    for scheme in ("http", "https"):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=f"{scheme}://dash") as c:
            origin = {"sec-fetch-site": "same-origin", "origin": f"{scheme}://dash"}
            login = await c.post("/login", data={"token": "rd-token"}, headers=origin)
            cookie = login.headers["set-cookie"]
            assert ("; secure" in cookie.lower()) is (scheme == "https"), cookie
            assert "httponly" in cookie.lower()
            assert "samesite=strict" in cookie.lower()
            assert "rd-token" not in cookie
            assert (await c.get("/")).status_code == 200
            out = await c.post("/logout", headers=origin)
            assert out.status_code == 303
            cleared = out.headers["set-cookie"]
            assert cleared.startswith(f'{SESSION_COOKIE}="";') or "Max-Age=0" in cleared
            assert "Path=/" in cleared
            assert SESSION_COOKIE not in c.cookies
            assert (await c.get("/")).status_code == 401


def test_closed_by_default(queue: JobQueue) -> None:
    with pytest.raises(ConfigurationError, match="needs an API token"):
        dashboard(queue, tokens=ApiTokens())
    with pytest.raises(ConfigurationError, match="16 bytes"):
        DashboardAuth(TOKENS, secret="short")


async def test_insecure_opens_it_without_login(queue: JobQueue) -> None:
    async with client(dashboard(queue, tokens=ApiTokens(), insecure=True)) as c:
        page = await c.get("/failed")
        assert page.status_code == 200
        assert (await c.post("/failed/retry", data={})).status_code == 403, "still CSRF-checked"


async def test_the_api_keeps_its_json_404(app: FastAPI) -> None:
    async with client(app) as c:
        response = await c.get("/api/nowhere", headers={"authorization": "Bearer adm-token"})
        assert response.status_code == 404
        assert response.json() == {"detail": "Not Found"}


# -- prefixes and proxies ----------------------------------------------------------------


async def test_mounted_under_a_prefix_and_behind_a_proxy_every_link_works(
    queue: JobQueue,
) -> None:
    await queue.enqueue("email", "x")
    host = FastAPI()
    host.mount("/admin/queue", dashboard(queue, tokens=TOKENS))
    for root in ("", "/proxy"):
        # A failed job of its own: the previous round retried the last one.
        await fail_jobs(queue, 1, job_type=f"scrape{root.strip('/')}")
        async with client(host, root_path=root) as c:
            first = await c.get(f"{root}/admin/queue/", headers=HTML)
            assert (
                first.headers["location"]
                == f"{root}/admin/queue/login?next=%2F"
                + (f"{root[1:]}%2F" if root else "")
                + "admin%2Fqueue%2F"
            )
            login = await c.post(
                f"{root}/admin/queue/login",
                data={"token": "adm-token", "next": f"{root}/admin/queue/failed"},
                headers=SAME_ORIGIN,
            )
            assert login.headers["location"] == f"{root}/admin/queue/failed"
            assert f"Path={root}/admin/queue/" in login.headers["set-cookie"]
            seen: set[str] = set()
            todo = [f"{root}/admin/queue/"]
            while todo:
                path = todo.pop()
                if path in seen:
                    continue
                seen.add(path)
                response = await c.get(path)
                assert response.status_code == 200, path
                if "text/html" in response.headers["content-type"]:
                    links = re.findall(
                        r'(?:href|src|action|sse-connect|hx-get)="([^"]+)"', response.text
                    )
                    for link in (found for found in links if not found.startswith("#")):
                        link = link.replace("&amp;", "&")
                        assert link.startswith(f"{root}/admin/queue/"), (path, link)
                        if not re.search(r"/(events|retry|cancel|logout)$", link):
                            todo.append(link)
            assert len(seen) > 8
            token = csrf_of((await c.get(f"{root}/admin/queue/failed")).text)
            done = await c.post(
                f"{root}/admin/queue/failed/retry",
                data={"csrf_token": token, "scope": "all"},
                headers=SAME_ORIGIN,
            )
            assert done.headers["location"].startswith(f"{root}/admin/queue/failed?retried=")


# -- failed jobs, bulk retry -------------------------------------------------------------


async def test_failed_jobs_are_grouped_by_error(app: FastAPI, queue: JobQueue) -> None:
    await fail_jobs(queue, 3, "scrape", "timeout")
    await fail_jobs(queue, 2, "email", "bounced")
    groups = await queue.get_failed_groups()
    assert [(g.error_message, g.job_type, g.count) for g in groups] == [
        ("timeout", "scrape", 3),
        ("bounced", "email", 2),
    ]
    assert groups[0].newest_id == 3
    assert groups[0].last_failed_at is not None
    async with logged_in(app, "adm-token") as c:
        page = (await c.get("/failed")).text
    assert "timeout" in page
    assert "bounced" in page
    assert "Retry all 5" in page


async def test_bulk_retry_is_capped_and_reported(app: FastAPI, queue: JobQueue) -> None:
    await fail_jobs(queue, BULK_RETRY_CAP + 200, "scrape", "timeout")
    await fail_jobs(queue, 3, "email", "bounced")
    async with logged_in(app, "adm-token") as c:
        first = (await c.get("/failed")).text
        token = csrf_of(first)
        assert f"Retry all {BULK_RETRY_CAP + 203:,} ({BULK_RETRY_CAP:,} per click)" in first
        group = await c.post(
            "/failed/retry",
            data={
                "csrf_token": token,
                "scope": "group",
                "job_type": "email",
                "error_message": "bounced",
            },
            headers=SAME_ORIGIN,
        )
        assert "retried=3&skipped=0&remaining=0" in group.headers["location"]
        everything = await c.post(
            "/failed/retry", data={"csrf_token": token, "scope": "all"}, headers=SAME_ORIGIN
        )
        location = everything.headers["location"]
        assert f"retried={BULK_RETRY_CAP}&skipped=0&remaining=200" in location
        page = (await c.get(location)).text
    assert "Retried 1,000 jobs" in page
    assert "200 still failed" in page
    assert (await queue.get_queue_stats()).failed_jobs == 200


# -- the queue verbs the dashboard reads -------------------------------------------------


async def test_list_jobs_pages_by_keyset_and_filters_by_target_and_error(
    queue: JobQueue,
) -> None:
    await queue.enqueue_many({"job_type": "a", "target_id": f"t{i % 3}"} for i in range(3))
    await queue.enqueue_many({"job_type": "b", "target_id": f"u{i}"} for i in range(5))
    assert [j.id for j in await queue.list_jobs(limit=3)] == [8, 7, 6]
    assert [j.id for j in await queue.list_jobs(limit=3, before_id=6)] == [5, 4, 3]
    assert [j.id for j in await queue.list_jobs(job_type="b", before_id=5)] == [4]
    assert [j.id for j in await queue.list_jobs(target_id="t1")] == [2]
    await fail_jobs(queue, 2, "c", "oops")
    assert len(await queue.list_jobs(status="failed", error_message="oops")) == 2
    assert await queue.list_jobs(status="failed", error_message="other") == []
    with pytest.raises(TypeError):
        await queue.list_jobs(target_id=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await queue.list_jobs(before_id="5")  # type: ignore[arg-type]


async def test_throughput_is_bucketed_by_finish_time(queue: JobQueue, clock: ManualClock) -> None:
    await queue.enqueue_many({"job_type": "a", "target_id": str(i)} for i in range(4))
    jobs = await queue.claim("w", limit=4)
    await queue.complete(jobs[0])
    clock.advance(120)
    await queue.complete(jobs[1])
    await queue.fail_attempt(jobs[2], "x")  # retried: not an end
    series = await queue.get_throughput(window=600, buckets=10)
    assert len(series) == 10
    assert [(b.completed, b.failed) for b in series if b.completed or b.failed] == [(1, 0), (1, 0)]
    assert series[-1].completed == 1
    assert series[-1].failure_rate == 0.0
    with pytest.raises(ValueError, match="buckets"):
        await queue.get_throughput(buckets=0)


# -- the shared snapshot and live updates ------------------------------------------------


async def test_viewers_share_one_snapshot_of_the_counts(queue: JobQueue) -> None:
    app = dashboard(queue, tokens=TOKENS)
    board = app.state.dashboard
    async with client(app) as c:
        auth = {"authorization": "Bearer rd-token"}
        await asyncio.gather(*(c.get(path, headers=auth) for path in ["/", "/jobs"] * 10))
    assert board.snapshot.count_reads == 1


async def test_the_stream_sends_a_debounced_change_and_ends_when_closed(
    queue: JobQueue,
) -> None:
    signal = ChangeSignal(queue, stopping=lambda: False)

    async def connected() -> bool:
        return False

    stream = change_stream(signal, connected)
    assert (await anext(stream)).startswith("retry:")
    reading = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.05)
    for i in range(20):
        await queue.enqueue("email", f"burst-{i}")
    assert (await asyncio.wait_for(reading, 2)).startswith("event: changed")
    closing = asyncio.ensure_future(anext(stream))
    signal.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(closing, 2)


async def test_the_stream_ends_when_the_server_stops(queue: JobQueue) -> None:
    stopping = False
    signal = ChangeSignal(queue, stopping=lambda: stopping)

    async def connected() -> bool:
        return False

    stream = change_stream(signal, connected)
    await anext(stream)
    reading = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.1)
    stopping = True
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(reading, 2)


def test_serve_shows_the_dashboard_and_stops_promptly_with_a_live_stream_open(
    tmp_path: Path,
) -> None:
    import threading
    import time

    from remote_support import TOKEN, ServeProcess

    with ServeProcess(tmp_path / "q.db", tmp_path / "serve.log") as server:
        base = server.api_url.removesuffix("/api")
        auth = {"authorization": f"Bearer {TOKEN}"}
        assert httpx.get(f"{base}/", headers=auth).status_code == 200
        assert httpx.get(f"{base}/").status_code == 401
        assert "dashboard at" in server.output()
        opened = threading.Event()

        def listen() -> None:
            with (
                contextlib.suppress(httpx.HTTPError),
                httpx.stream("GET", f"{base}/events", headers=auth, timeout=30) as stream,
            ):
                for _ in stream.iter_lines():
                    opened.set()

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        assert opened.wait(10), "the event stream did not open"
        started = time.monotonic()
        assert server.stop() == 0, server.output()
        assert time.monotonic() - started < 5, "an open event stream held the server up"
        listener.join(5)


def test_sessions_expire_and_are_shared_by_replicas_with_one_secret() -> None:
    from asyncqueue.dashboard import Role
    from asyncqueue.dashboard.security import SESSION_SECONDS

    secret = "a-shared-secret-of-32-characters"
    one, two = DashboardAuth(TOKENS, secret=secret), DashboardAuth(TOKENS, secret=secret)
    other = DashboardAuth(TOKENS)
    cookie = one.new_session(Role.ADMIN, now=1000.0)
    assert two._session_viewer(cookie, now=1001.0) == one._session_viewer(cookie, now=1001.0)
    assert one._session_viewer(cookie, now=1001.0) is not None
    assert other._session_viewer(cookie, now=1001.0) is None, "another key"
    assert one._session_viewer(cookie, now=1000.0 + SESSION_SECONDS + 1) is None, "expired"
    assert one._session_viewer("garbage", now=1001.0) is None
    readers = DashboardAuth(TOKENS, secret=secret, read_only=True)
    viewer = readers._session_viewer(cookie, now=1001.0)
    assert viewer is not None
    assert viewer.role is Role.READ, "read_only wins over an admin session"


# -- bad input ---------------------------------------------------------------------------


async def test_bad_input_gets_a_clear_4xx_never_a_500_and_writes_nothing(
    app: FastAPI, queue: JobQueue
) -> None:
    await fail_jobs(queue, 3)
    before = await queue.get_queue_stats()
    async with logged_in(app, "adm-token") as c:
        for path in (
            "/jobs?status=bogus",
            "/jobs?before=-1",
            "/jobs?before=99999999999999999999999",
            "/jobs?limit=99999999999",
            "/jobs?type=" + "t" * 10_000,
            "/jobs?target=a%00b",
            "/jobs?type=a%00b&status=failed",
            "/jobs?status=%00",
            "/jobs?target=%ff%fe",
        ):
            response = await c.get(path, headers=HTML)
            assert response.status_code == 200, (path, response.status_code)
        for path in ("/jobs/abc", "/jobs/-1", "/jobs/1.5", "/jobs/" + "9" * 40):
            response = await c.get(path, headers=HTML)
            assert response.status_code == 404, (path, response.status_code)
        token = csrf_of((await c.get("/failed")).text)
        for path, data in (
            ("/jobs/1/retry", {}),
            ("/jobs/1/retry", {"csrf_token": "wrong"}),
            ("/jobs/1/retry", {"csrf_token": "\x00"}),
            ("/failed/retry", {"csrf_token": "wrong", "scope": "all"}),
        ):
            response = await c.post(path, data=data, headers=SAME_ORIGIN)
            assert response.status_code == 403, (path, data, response.status_code)
        for path in ("/jobs/abc/retry", "/jobs/" + "9" * 40 + "/cancel", "/jobs/-1/retry"):
            response = await c.post(path, data={"csrf_token": token}, headers=SAME_ORIGIN)
            assert response.status_code in (303, 404), (path, response.status_code)
        for data in (
            {"scope": "group", "job_type": "x\x00y", "error_message": "boom"},
            {"scope": "group", "job_type": "scrape", "error_message": "b\x00" * 10_000},
            {"scope": "group", "job_type": "t" * 20_000},
            {"scope": "group"},
            {"scope": "everything"},
            {"scope": "group", "job_type": "nope", "error_message": "x", "cap": "-5"},
            {"scope": "group", "job_type": "nope", "error_message": "", "cap": "9" * 30},
        ):
            response = await c.post(
                "/failed/retry", data={"csrf_token": token, **data}, headers=SAME_ORIGIN
            )
            assert response.status_code in (303, 400), (data, response.status_code)
            assert response.status_code == 400 or "retried=0" in response.headers["location"]
        assert (await queue.get_queue_stats()).failed_jobs == before.failed_jobs
        huge = await c.post("/jobs/1/retry", content=b"x" * 200_000, headers=SAME_ORIGIN)
        assert huge.status_code == 413
    async with client(app) as c:
        for token in ("", " ", "\x00", "t" * 60_000, "é" * 1000):
            response = await c.post("/login", data={"token": token}, headers=SAME_ORIGIN)
            assert response.status_code == 401, (token[:5], response.status_code)
            assert "not valid" in response.text
            assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
        too_big = await c.post("/login", data={"token": "t" * 70_000}, headers=SAME_ORIGIN)
        assert too_big.status_code == 413
    assert (await queue.get_queue_stats()) == before
