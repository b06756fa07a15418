"""No module outside tests does four jobs: each stays at or under MAX_LINES lines (split by subject when it grows)."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 300


def oversized(root: Path, limit: int = MAX_LINES) -> list[str]:
    """`path: lines` of every module of app/, workers/, bench/ and scheduler.py over `limit` lines."""
    packages = ("app", "workers", "bench")
    paths = [root / "scheduler.py", *(path for package in packages for path in (root / package).rglob("*.py"))]
    found = []
    for path in sorted(paths):
        lines = len(path.read_text().splitlines())
        if lines > limit:
            found.append(f"{path.relative_to(root)}: {lines}")
    return found


def test_no_module_over_the_limit():
    assert oversized(ROOT) == []


def test_the_check_sees_a_long_module(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "long.py").write_text("x = 1\n" * (MAX_LINES + 1))
    (tmp_path / "app" / "short.py").write_text("x = 1\n" * MAX_LINES)
    (tmp_path / "scheduler.py").write_text("")
    assert oversized(tmp_path) == [f"app/long.py: {MAX_LINES + 1}"]
