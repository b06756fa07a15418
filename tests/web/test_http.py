"""Job-status API, admin auth (session, bearer, CSRF), pages, and /healthz."""
from __future__ import annotations

import re

from app.jobs.service import add_job
from app.models import JobEvent


def test_job_status_returns_the_job_for_an_admin(client, redis_conn, bearer):
    job_id = add_job("noop", {"x": 1})
    response = client.get(f"/api/admin/job-status/{job_id}", headers=bearer)
    assert response.status_code == 200
    body = response.get_json()
    assert body["success"] is True
    assert set(body["job"]) >= {"id", "type", "status", "createdAt", "startedAt", "completedAt", "result",
                                "errorMessage", "attempts", "maxAttempts"}
    assert body["job"]["id"] == job_id and body["job"]["status"] == "pending"
    assert body["job"]["attempts"] == 0 and body["job"]["maxAttempts"] == 3


def test_job_status_refuses_anonymous_and_wrong_tokens(client, redis_conn):
    job_id = add_job("noop", {})
    assert client.get(f"/api/admin/job-status/{job_id}").status_code == 401
    wrong = client.get(f"/api/admin/job-status/{job_id}", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.get_json()["error"] == "Unauthorized"


def test_job_status_404_for_unknown_and_malformed_ids(client, bearer):
    for job_id in ("00000000-0000-0000-0000-000000000000", "not-a-uuid", "1%20OR%201=1"):
        response = client.get(f"/api/admin/job-status/{job_id}", headers=bearer)
        assert response.status_code == 404
        assert response.get_json() == {"success": False, "error": "Job not found"}


def test_the_admin_session_works_for_the_api_and_pages(admin_client, redis_conn):
    job_id = add_job("noop", {"title": "<script>alert(1)</script>"})
    JobEvent.create(job=job_id, level="warn", context="Test", message="<b>not bold</b>")
    assert admin_client.get(f"/api/admin/job-status/{job_id}").status_code == 200
    listing = admin_client.get("/admin/logs?status=pending").get_data(as_text=True)
    assert f"/admin/jobs/{job_id}" in listing
    detail = admin_client.get(f"/admin/jobs/{job_id}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in detail and "<b>not bold</b>" not in detail
    assert "&lt;b&gt;not bold&lt;/b&gt;" in detail
    assert admin_client.get("/admin/jobs/not-a-uuid").status_code == 404


def test_pages_redirect_anonymous_users_to_login(client):
    response = client.get("/admin/jobs")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_login_needs_a_csrf_token_and_the_right_password(client):
    assert client.post("/login", data={"username": "admin", "password": "x"}).status_code == 400
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    bad = client.post("/login", data={"username": "admin", "password": "wrong", "csrf_token": token})
    assert bad.status_code == 401 and "Wrong username or password" in bad.get_data(as_text=True)
    assert client.get("/admin/jobs").status_code == 302


def test_login_never_redirects_off_site(client):
    from helpers import ADMIN_PASSWORD

    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = client.post("/login?next=//evil.example/x",
                           data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token})
    assert response.headers["Location"] == "/admin/logs"


def test_healthz_reports_redis_database_and_workers(client, redis_conn):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["redis"] == "ok" and body["database"] == "ok"
    assert body["workers"]["monitor_download"] == {"live": 0, "configured": 5}
    assert body["status"] == "degraded" and "search_indexers" in body["missingWorkers"]


def test_healthz_is_503_when_redis_is_down(tmp_path, settings):
    from app import create_app

    from helpers import make_settings

    down, _ = make_settings(tmp_path, REDIS_URL="redis://127.0.0.1:1/0")
    response = create_app(down).test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["redis"].startswith("error")


def test_healthz_is_503_when_the_database_is_down(tmp_path, settings):
    from app import create_app
    from app.db import bind_database

    from helpers import TEST_DATABASE_URL, make_settings

    down, _ = make_settings(tmp_path, DATABASE_URL="postgresql://127.0.0.1:1/nowhere")
    try:
        response = create_app(down).test_client().get("/healthz")
    finally:
        bind_database(TEST_DATABASE_URL)
    assert response.status_code == 503 and response.get_json()["database"].startswith("error")
