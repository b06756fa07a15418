"""Recovery times of the scenarios: one line each (`FAULT <name>: recovered in 31.2 s`), printed at the
end of the test session and merged into tests/faults/last-run.json (which the README quotes)."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

LAST_RUN = Path(__file__).with_name("last-run.json")
RESULTS: dict[str, dict] = {}


def record(scenario: str, recovered_s: float | None, **details) -> str:
    """Keep the figure of one scenario; returns its summary line (also printed right away)."""
    entry = {"recovered_s": None if recovered_s is None else round(recovered_s, 1),
             "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
             "test": os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0],
             **{k: (round(v, 1) if isinstance(v, float) else v) for k, v in details.items()}}
    RESULTS[scenario] = entry
    line = summary_line(scenario, entry)
    print(f"\n{line}")
    return line


def summary_line(scenario: str, entry: dict) -> str:
    recovered = entry["recovered_s"]
    head = f"FAULT {scenario}: " + (f"recovered in {recovered} s" if recovered is not None else "did not recover")
    extras = ", ".join(f"{k}={v}" for k, v in entry.items() if k not in ("recovered_s", "measured_at", "test"))
    return f"{head} ({extras})" if extras else head


def set_outcome(nodeid: str, passed: bool) -> None:
    """Mark the scenario recorded by test `nodeid` as passed or failed (its invariants)."""
    for entry in RESULTS.values():
        if entry.get("test") == nodeid:
            entry["passed"] = passed


def write_last_run() -> None:
    """Merge this session's figures into last-run.json (scenarios not run this time keep their figure)."""
    if not RESULTS:
        return
    try:
        previous = json.loads(LAST_RUN.read_text())
    except (OSError, ValueError):
        previous = {}
    previous.update(RESULTS)
    LAST_RUN.write_text(json.dumps(dict(sorted(previous.items())), indent=2) + "\n")
