"""One vocabulary for statuses: the sets live on the enums (JobStatus, DownloadStatus) and in the request state
machine; Job.can_retry / can_cancel and the request rules are what the services and the pages both ask; no
module or template spells a set of statuses out again."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from app.admin_actions import retries
from app.audiobook_requests import state as request_state
from app.audiobook_requests.state import RequestStatus
from app.jobs import service
from app.jobs.service import JobActionError
from app.migrations import MIGRATIONS
from app.models import (
    TERMINAL_JOB_STATUSES,
    Audiobook,
    DownloadHistory,
    DownloadStatus,
    Job,
    JobStatus,
    Request,
    status_values,
    utcnow,
)
from app.pipeline.download_state import DownloadState

ROOT = Path(__file__).resolve().parents[2]  # the repository
J, R, D = JobStatus, RequestStatus, DownloadStatus

# status: (is_terminal, can_retry while not yet retried, can_cancel)
JOB_RULES = {
    J.PENDING: (False, False, True),
    J.DELAYED: (False, False, True),
    J.ACTIVE: (False, False, False),
    J.STUCK: (False, False, False),      # RQ retries a stuck job by itself
    J.COMPLETED: (True, False, False),
    J.FAILED: (True, True, False),
    J.CANCELLED: (True, False, False),
}

# status: (can_retry, can_cancel, can_pick: an admin may pick a release by hand)
REQUEST_RULES = {
    R.PENDING: (False, True, True),
    R.SEARCHING: (False, True, True),
    R.AWAITING_SEARCH: (True, True, True),
    R.DOWNLOADING: (False, True, True),      # swaps its download
    R.PROCESSING: (False, False, False),
    R.DOWNLOADED: (False, False, False),
    R.AVAILABLE: (False, False, False),
    R.FAILED: (True, True, True),
    R.CANCELLED: (True, False, True),        # re-opened: it searches again
    R.AWAITING_IMPORT: (True, True, True),
    R.WARN: (True, True, True),
    R.DELETED: (False, False, False),
}


# --- the rules, status by status ---------------------------------------------------------------------

def test_every_status_has_a_row_in_the_tables():
    assert set(JOB_RULES) == set(JobStatus) and set(REQUEST_RULES) == set(RequestStatus)


@pytest.mark.parametrize("status", list(JobStatus), ids=lambda s: s.value)
def test_job_rules(status):
    terminal, retry, cancel = JOB_RULES[status]
    job = Job(status=status.value)
    assert (job.is_terminal, job.can_retry, job.can_cancel) == (terminal, retry, cancel)
    assert Job(status=status.value, retried_at=utcnow()).can_retry is False  # each failed row is retried once
    assert (status in J.TERMINAL, status in J.RETRYABLE, status in J.CANCELLABLE) == (terminal, retry, cancel)


def test_job_sets():
    assert J.TERMINAL == {J.COMPLETED, J.FAILED, J.CANCELLED}
    assert J.UNFINISHED == {J.PENDING, J.DELAYED, J.ACTIVE, J.STUCK}
    assert J.WAITING == {J.PENDING, J.DELAYED, J.STUCK}
    assert J.NOT_STARTED == J.CANCELLABLE == {J.PENDING, J.DELAYED} and J.ERRORED == {J.FAILED, J.STUCK}
    assert J.RETRYABLE <= J.TERMINAL and J.CANCELLABLE <= J.WAITING
    assert TERMINAL_JOB_STATUSES == ["cancelled", "completed", "failed"]
    # no set became a member
    assert list(JobStatus) == [J.PENDING, J.DELAYED, J.ACTIVE, J.COMPLETED, J.FAILED, J.STUCK, J.CANCELLED]


@pytest.mark.parametrize("status", list(RequestStatus), ids=lambda s: s.value)
def test_request_rules(status):
    retry, cancel, pick = REQUEST_RULES[status]
    assert (request_state.can_retry(status.value), request_state.can_cancel(status.value),
            request_state.can_pick(status.value)) == (retry, cancel, pick)
    assert (status in request_state.RETRYABLE, status in request_state.CANCELLABLE,
            status in request_state.PICK_RELEASE_FROM) == (retry, cancel, pick)


def test_request_retry_runs_one_step_per_status():
    assert not set(request_state.RETRY_SEARCH_FROM) & set(request_state.RETRY_IMPORT_FROM)
    assert request_state.RELEASED_TORRENT == {R.CANCELLED, R.FAILED, R.DELETED}
    assert request_state.FINISHED_WITH_TORRENT == {R.AVAILABLE, R.CANCELLED, R.FAILED, R.DELETED}


@pytest.mark.parametrize("state", list(DownloadState), ids=lambda s: s.value)
def test_every_client_state_is_stored_as_one_download_status(state):
    expected = D.COMPLETED if state is DownloadState.COMPLETE else D(state.value)
    assert D.of(state) is expected and D.of(state).value != "complete"


def test_download_statuses():
    assert D("complete") is D.COMPLETED  # rows written before migration 8 still read as completed
    assert D.ENDED == {D.FAILED, D.REMOVED}
    assert DownloadHistory.download_status.default == "queued"
    with pytest.raises(ValueError):
        D("done")
    assert status_values({D.REMOVED, D.COMPLETED}) == ["completed", "removed"]


def test_migration_8_rewrites_the_old_spelling(settings):
    book = Audiobook.create(title="T", author="A")
    request = Request.create(audiobook=book, status="downloading")
    old = DownloadHistory.create(request=request, download_status="complete")
    other = DownloadHistory.create(request=request, download_status="downloading")
    version, _, migration = next(m for m in MIGRATIONS if m[0] == 8)
    assert version == 8
    migration(DownloadHistory._meta.database.obj)
    assert [DownloadHistory.get_by_id(row.id).download_status for row in (old, other)] == ["completed", "downloading"]


# --- the services ask the same rules --------------------------------------------------------------------

@pytest.mark.parametrize("status", list(JobStatus), ids=lambda s: s.value)
def test_cancel_job_accepts_exactly_the_cancellable(settings, redis_conn, status):
    job = Job.create(type="noop", status=status.value, payload={})
    if job.can_cancel:
        service.cancel_job(job.id)
        assert Job.get_by_id(job.id).status == "cancelled"
    else:
        with pytest.raises(JobActionError, match="only pending or delayed jobs can be cancelled"):
            service.cancel_job(job.id)
        assert Job.get_by_id(job.id).status == status.value


@pytest.mark.parametrize("status", [s for s in JobStatus if s not in J.RETRYABLE], ids=lambda s: s.value)
def test_retry_job_refuses_what_cannot_be_retried(settings, redis_conn, status):
    job = Job.create(type="noop", status=status.value, payload={})
    with pytest.raises(JobActionError, match="only failed jobs can be retried"):
        retries.retry_job(job.id)
    assert Job.select().count() == 1


def test_a_retried_failed_job_is_refused_as_already_retried(settings, redis_conn):
    job = Job.create(type="noop", status="failed", payload={}, retried_at=utcnow())
    with pytest.raises(JobActionError, match="a retry of this job is being started right now"):
        retries.retry_job(job.id)
    assert Job.select().count() == 1


# --- the pages ask the same rules ------------------------------------------------------------------------

@pytest.mark.parametrize("status", list(JobStatus), ids=lambda s: s.value)
def test_the_job_page_shows_retry_and_cancel_exactly_when_they_apply(admin_client, status):
    job = Job.create(type="noop", status=status.value, payload={})
    page = admin_client.get(f"/admin/jobs/{job.id}").get_data(as_text=True)
    terminal, retry, cancel = JOB_RULES[status]
    assert (f"/admin/jobs/{job.id}/retry" in page, f"/admin/jobs/{job.id}/cancel" in page) == (retry, cancel)
    assert ("data-refresh-url" in page) == (not terminal)


def test_the_job_page_of_a_retried_job_links_the_new_run(admin_client):
    new = Job.create(type="noop", status="pending", payload={})
    job = Job.create(type="noop", status="failed", payload={}, retried_at=utcnow(), retry_job_id=new.id)
    page = admin_client.get(f"/admin/jobs/{job.id}").get_data(as_text=True)
    assert f"/admin/jobs/{job.id}/retry" not in page and f'id="retry-run">run {new.id}' in page


def test_the_requests_page_shows_retry_cancel_and_search_exactly_when_they_apply(admin_client):
    book = Audiobook.create(title="T", author="A")
    requests = {status: Request.create(audiobook=book, status=status.value) for status in RequestStatus}
    page = admin_client.get("/admin/requests?status=all&partial=1").get_data(as_text=True)
    for status, request in requests.items():
        shown = (f"/admin/requests/{request.id}/retry" in page, f"/admin/requests/{request.id}/cancel" in page,
                 f'data-releases-url="/api/requests/{request.id}/releases"' in page)
        assert shown == REQUEST_RULES[status], status


def test_the_followed_job_badge_stops_at_the_terminal_statuses(admin_client):
    started = Job.create(type="noop", status="pending", payload={})
    page = admin_client.get(f"/admin/scheduled?started={started.id}").get_data(as_text=True)
    assert 'data-job-terminal="cancelled completed failed"' in page


# --- the rule lives once: no spelled-out sets of statuses -------------------------------------------------

VOCABULARY = [{s.value for s in enum} for enum in (JobStatus, RequestStatus, DownloadStatus)]
# Files another change is rewriting, with the sets they still spell out: (file, words). Remove an entry when its
# file uses the vocabulary (the test below fails on an entry that no longer matches anything).
NOT_YET_CONVERTED: set[tuple[str, tuple[str, ...]]] = set()
_COLLECTION = re.compile(r"[(\[{]([^()\[\]{}]*)[)\]}]")  # innermost (...), [...] or {...}
_QUOTED = re.compile(r"""['"]([a-z_]+)['"]""")


def spells_out_statuses(words: tuple[str, ...] | None) -> bool:
    """Two or more statuses of one kind (jobs, requests, downloads), and nothing else, written out as a
    collection. Collections that also hold other words (metric labels, RQ registry names) are something else."""
    return words is not None and len(set(words)) >= 2 and any(set(words) <= statuses for statuses in VOCABULARY)


def _status_word(node: ast.expr) -> str | None:
    """"failed" and JobStatus.FAILED.value both spell a status out; anything else is None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Attribute) and node.attr == "value" and isinstance(node.value, ast.Attribute):
        return node.value.attr.lower()
    return None


def python_collections(source: str) -> list[tuple[int, tuple[str, ...] | None]]:
    """Every tuple, list and set literal: (line, its status words), or None when an element is something else."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            words = [_status_word(element) for element in node.elts]
            found.append((node.lineno, None if None in words else tuple(w for w in words if w is not None)))
    return found


def text_collections(source: str) -> list[tuple[int, tuple[str, ...] | None]]:
    """Jinja tuples and JavaScript arrays (a dict literal, with its colons, maps statuses to something else)."""
    return [(number, tuple(_QUOTED.findall(match.group(1))))
            for number, line in enumerate(source.splitlines(), 1)
            for match in _COLLECTION.finditer(line) if ":" not in match.group(1)]


def spelled_out(path: Path) -> list[tuple[str, int, tuple[str, ...]]]:
    source = path.read_text(encoding="utf-8")
    found = python_collections(source) if path.suffix == ".py" else text_collections(source)
    return [(path.relative_to(ROOT).as_posix(), line, words) for line, words in found
            if words is not None and spells_out_statuses(words)]


def scanned_files() -> list[Path]:
    files = [ROOT / "scheduler.py"]
    for folder, pattern in (("app", "*.py"), ("workers", "*.py"), ("templates", "*.html"), ("app/static", "*.js")):
        files.extend(sorted((ROOT / folder).rglob(pattern)))
    return files


def test_the_scan_finds_the_old_spellings():
    def python(source):
        return [words for _, words in python_collections(source) if spells_out_statuses(words)]

    def text(source):
        return [words for _, words in text_collections(source) if spells_out_statuses(words)]

    assert python('_FINISHED = (S.CANCELLED.value, S.COMPLETED.value, S.FAILED.value)') == [
        ("cancelled", "completed", "failed")]
    assert python('q.not_in(["completed", "removed"])') == [("completed", "removed")]
    assert text("{% if job.status not in ('completed', 'failed', 'cancelled') %}") == [
        ("completed", "failed", "cancelled")]
    assert text("const done = ['completed', 'failed', 'cancelled'];") == [("completed", "failed", "cancelled")]
    # not sets of statuses: a params tuple, metric labels, a dict mapping states to CSS classes
    assert python("params = (S.COMPLETED.value, stored, now, S.ACTIVE.value, token)") == []
    assert python('OUTCOMES = ("completed", "failed", "retried", "polled")') == []
    assert text("{{ {'ok': 'completed', 'failing': 'failed'}[state] }}") == []
    assert len(scanned_files()) > 50


def test_no_module_or_template_spells_a_set_of_statuses_out():
    found = [hit for path in scanned_files() for hit in spelled_out(path)]
    unexpected = [f"{path}:{line} {words}" for path, line, words in found if (path, words) not in NOT_YET_CONVERTED]
    assert unexpected == [], "use the sets on the enums / in app/audiobook_requests/state.py:\n" + "\n".join(unexpected)
    stale = NOT_YET_CONVERTED - {(path, words) for path, _, words in found}
    assert stale == set(), "converted meanwhile: remove from NOT_YET_CONVERTED"
