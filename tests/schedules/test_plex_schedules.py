"""The Plex schedules follow the configuration (disabled without Plex, enabled at the next start with it) unless
an admin changed them."""
from __future__ import annotations

from datetime import datetime

import pytest

from app.models import ScheduledJob
from app.schedules.defaults import ensure_default_schedules, should_enable

PLEX = {"PLEX_URL": "http://127.0.0.1:9", "PLEX_TOKEN": "plex-token", "PLEX_LIBRARY_ID": "1"}
PLEX_TYPES = ("scan_plex", "plex_recently_added_check")
NOW = datetime(2026, 1, 1, 12, 0, 0)


# --- Plex schedules follow the configuration -------------------------------------------------------

def _enabled(job_type: str) -> bool:
    return ScheduledJob.get(ScheduledJob.type == job_type).enabled


def test_plex_schedules_are_created_disabled_without_plex_and_enabled_at_the_next_start_with_it(use_settings):
    ensure_default_schedules(use_settings(), NOW)
    assert [_enabled(t) for t in PLEX_TYPES] == [False, False]
    assert _enabled("cleanup_job_history")
    assert ScheduledJob.get(ScheduledJob.type == "scan_plex").next_run is None

    assert ensure_default_schedules(use_settings(**PLEX), NOW) == []  # nothing new inserted
    for job_type in PLEX_TYPES:
        row = ScheduledJob.get(ScheduledJob.type == job_type)
        assert row.enabled and row.enabled_changed_by == "system" and row.next_run > NOW


def test_plex_schedules_are_created_enabled_when_plex_is_configured(use_settings):
    ensure_default_schedules(use_settings(**PLEX), NOW)
    assert [_enabled(t) for t in PLEX_TYPES] == [True, True]


def test_a_plex_schedule_an_admin_disabled_stays_disabled(client, use_settings, bearer):
    ensure_default_schedules(use_settings(**PLEX), NOW)
    scan = ScheduledJob.get(ScheduledJob.type == "scan_plex")
    response = client.put(f"/api/admin/jobs/{scan.id}", json={"enabled": False}, headers=bearer)
    assert response.status_code == 200, response.get_json()
    assert ScheduledJob.get_by_id(scan.id).enabled_changed_by == "admin"

    ensure_default_schedules(use_settings(**PLEX), NOW)  # the next start
    assert not _enabled("scan_plex")
    assert _enabled("plex_recently_added_check")


def test_editing_only_the_cron_does_not_count_as_an_admin_choice(client, use_settings, bearer):
    ensure_default_schedules(use_settings(), NOW)
    scan = ScheduledJob.get(ScheduledJob.type == "scan_plex")
    response = client.put(f"/api/admin/jobs/{scan.id}", json={"schedule": "0 */2 * * *", "enabled": False},
                          headers=bearer)
    assert response.status_code == 200, response.get_json()
    assert ScheduledJob.get_by_id(scan.id).enabled_changed_by == "system"

    ensure_default_schedules(use_settings(**PLEX), NOW)
    assert _enabled("scan_plex")
    assert ScheduledJob.get_by_id(scan.id).schedule == "0 */2 * * *"  # the admin's cron is kept


@pytest.mark.parametrize("needs_plex, plex_configured, enabled, changed_by, expected", [
    (True, True, False, "system", True),
    (True, True, False, None, True),       # rows from before migration 6
    (True, True, False, "admin", False),   # an admin disabled it
    (True, False, False, "system", False),  # Plex still not configured
    (True, True, True, "system", False),   # already enabled
    (False, True, False, "system", False),  # not a Plex schedule
])
def test_when_the_system_enables_a_schedule(needs_plex, plex_configured, enabled, changed_by, expected):
    assert should_enable(needs_plex, plex_configured, enabled, changed_by) is expected
