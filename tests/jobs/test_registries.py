"""The job-type and processor registries refuse a name registered twice, and every job type has exactly one
processor."""
from __future__ import annotations

import pytest

from app.jobs import types
from workers import processors

# --- registries refuse a name twice ---------------------------------------------------------------------------


def _register_type(name: str) -> None:
    types.register(types.JobType(name=name, group=types.MAINTENANCE_GROUP, timeout=30))


def _register_processor(name: str) -> None:
    processors.register(name)(lambda payload: None)


@pytest.mark.parametrize("register, registry", [(_register_type, types._REGISTRY),
                                                 (_register_processor, processors._PROCESSORS)],
                         ids=["job types", "processors"])
@pytest.mark.parametrize("name, fresh", [("code_health_dup", True), ("search_indexers", False),
                                         ("organize_files", False)])
def test_a_registry_refuses_a_name_registered_twice(register, registry, name, fresh):
    before = registry.get(name)
    try:
        if fresh:
            register(name)  # the first time is accepted
            assert name in registry
        first = registry[name]
        with pytest.raises(ValueError, match=name):
            register(name)
        assert registry[name] is first  # the first definition stays
    finally:
        if fresh:
            registry.pop(name, None)
    assert registry.get(name) is before


def test_every_job_type_has_one_processor_and_each_name_once():
    assert sorted(t.name for t in types.all_types() if not t.name.startswith("test_")) == \
        sorted(n for n in processors.registered() if not n.startswith("test_"))
