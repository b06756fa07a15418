"""The job type registry is one place: every type's worker group is declared with a size, config reads
WORKERS_<GROUP> for every declared group (a group declared later included), each registered type is a JobKind,
and the final-failure hook of a request step resolves to a function."""
from __future__ import annotations

import importlib
from dataclasses import fields

import pytest

from app.audiobook_requests.pipeline import STEP_STATUS
from app.config import SettingsError, load_settings
from app.jobs import types
from app.jobs.types import JobKind, JobType, Priority, WorkerGroup
from workers.worker import ForkJobWorker, JobWorker, worker_class

import jobtypes  # noqa: F401  (the testing group and its types: registered like any other)

FRESH = "types_fresh_group"


@pytest.fixture
def fresh_group():
    """A group declared after app.config was imported, as a plugin or a test would declare one."""
    group = types.declare_group(WorkerGroup(name=FRESH, size=4))
    types.register(JobType(name="types_fresh_job", group=FRESH, timeout=30))
    yield group
    types._REGISTRY.pop("types_fresh_job", None)
    types._GROUPS.pop(FRESH, None)


def test_every_type_is_served_by_a_declared_group_with_a_size():
    for job_type in types.all_types():
        group = types.worker_group(job_type.group)
        assert group is not None, f"{job_type.name}: group {job_type.group!r} is not declared"
    for group in types.worker_groups():
        assert isinstance(group.size, int) and group.size >= 0, group


def test_a_type_of_an_undeclared_group_is_refused():
    with pytest.raises(ValueError, match="not declared"):
        types.register(JobType(name="types_orphan", group="no_such_group", timeout=30))
    assert types.get("types_orphan") is None


def test_a_group_declared_twice_is_refused():
    with pytest.raises(ValueError, match="already declared"):
        types.declare_group(WorkerGroup(name=types.MAINTENANCE_GROUP, size=9))
    assert types.worker_group(types.MAINTENANCE_GROUP).size == 1


def test_job_types_are_keyword_only():
    """Positional entries could swap timeout and priority (two ints) without a type error."""
    with pytest.raises(TypeError):
        JobType("types_positional", types.MAINTENANCE_GROUP, (), Priority.HIGH, 300)  # type: ignore[misc]


def test_defaults_are_the_declared_sizes():
    counts = load_settings({}, env_file=None).worker_counts
    assert counts == {group.name: group.size for group in types.worker_groups()}
    assert counts["monitor_download"] == 5 and counts["maintenance"] == 1


@pytest.mark.parametrize("group", [g.name for g in types.worker_groups()])
def test_workers_variable_is_read_for_every_declared_group(group):
    env = types.worker_group(group).env
    assert env == f"WORKERS_{group.upper()}"
    assert load_settings({env: "7"}, env_file=None).worker_counts[group] == 7
    with pytest.raises(SettingsError, match=env):
        load_settings({env: "-1"}, env_file=None)


def test_workers_variable_is_read_for_a_group_declared_later(fresh_group):
    assert load_settings({}, env_file=None).worker_counts[FRESH] == 4
    assert load_settings({"WORKERS_TYPES_FRESH_GROUP": "0"}, env_file=None).worker_counts[FRESH] == 0
    from workers.supervisor import select_groups

    known = types.groups()
    assert select_groups(known, {}, [FRESH], False, [], None) == {FRESH: 4}  # its size, not 1


def test_every_registered_type_is_a_job_kind_and_every_kind_is_registered():
    registered = {t.name for t in types.all_types() if not t.name.startswith(("test_", "types_"))}
    assert registered == {kind.value for kind in JobKind}
    assert JobKind.SCAN_PLEX == "scan_plex" and f"{JobKind.SCAN_PLEX}" == "scan_plex"  # stored rows keep working


def test_final_failure_hooks_resolve_and_are_set_on_the_request_steps():
    hooked = {t.name for t in types.all_types() if t.final_failure_hook}
    assert hooked == set(STEP_STATUS)
    for job_type in types.all_types():
        if job_type.final_failure_hook:
            module, _, name = job_type.final_failure_hook.rpartition(".")
            assert callable(getattr(importlib.import_module(module), name)), job_type.final_failure_hook


def test_the_forked_flag_picks_the_worker_class():
    forked = [g.name for g in types.worker_groups() if g.forked]
    assert forked == ["send_notification"]
    assert worker_class("send_notification") is ForkJobWorker
    assert worker_class("maintenance") is JobWorker


def test_the_job_type_fields_the_docs_name_exist():
    names = {f.name for f in fields(JobType)}
    assert {"name", "group", "required_keys", "timeout", "priority", "deprecated", "description",
            "final_failure_hook"} <= names
