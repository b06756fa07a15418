"""Benches that cannot rot: every runnable script under bench/ (a file with a `__main__` block, found by glob, so a
new script is covered without a list) runs with `--quick` against the test session's PostgreSQL database and Redis
db, exits 0 and prints every label of its module-level `FIGURES`. A script without `--quick` (argparse exits 2),
without FIGURES, with a failed job, a page that redirects or a missing figure fails here.

The checker itself is tested on small scripts written for the purpose (test_checker_*), so it can fail.
"""
from __future__ import annotations

import ast
import importlib.util
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT, TEST_DATABASE_URL, TEST_REDIS_URL

BENCH = ROOT / "bench"
TIMEOUT_SECONDS = 150  # each --quick run takes seconds; the memory stack's up to a minute on a loaded machine
SCRIPTS = sorted(path for path in BENCH.glob("*.py") if "__main__" in path.read_text())


def declared_figures(script: Path) -> tuple[str, ...] | None:
    """The labels a script's output must hold: its module-level `FIGURES = ("label", ...)`, read without
    importing it (None when it has none)."""
    for node in ast.parse(script.read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "FIGURES" for t in node.targets):
            return tuple(ast.literal_eval(node.value))
    return None


def bench_env(tmp_path: Path) -> dict[str, str]:
    """The test session's database and Redis db for the benches (bench/common.py reads these), a database of
    its own for the memory bench (it creates and drops it), an instance dir under tmp_path."""
    return {**os.environ, "PYTHONPATH": str(ROOT),
            "BENCH_DATABASE_URL": TEST_DATABASE_URL, "BENCH_REDIS_URL": TEST_REDIS_URL,
            "BENCH_MEMORY_DATABASE_URL": f"{TEST_DATABASE_URL}_bench_memory",
            "BENCH_INSTANCE_DIR": str(tmp_path / "bench-instance")}


def quick_run_problems(script: Path, env: dict[str, str], timeout: float = TIMEOUT_SECONDS) -> list[str]:
    """What is wrong with `python <script> --quick`: no FIGURES, a non-zero exit, a label missing from stdout."""
    process = subprocess.Popen([sys.executable, str(script), "--quick"], cwd=ROOT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # SIGINT first: the script's `finally` stops what it started (gunicorn, the honcho stack, redis-server)
        process.send_signal(signal.SIGINT)
        try:
            stdout, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
        stderr += f"\n(timed out after {timeout:.0f} s)"
    shown = f"\n--- stdout\n{stdout[-4000:]}\n--- stderr\n{stderr[-4000:]}"
    problems = [f"{script.name} --quick exited {process.returncode}{shown}"] if process.returncode != 0 else []
    figures = declared_figures(script)
    if not figures:
        problems.append(f"{script.name} declares no FIGURES = (...) (the labels its --quick output must hold)")
    elif not problems and (missing := [label for label in figures if label not in stdout]):
        problems.append(f"{script.name} --quick printed no {missing}{shown}")
    return problems


def test_every_runnable_script_is_found():
    names = {path.name for path in SCRIPTS}
    assert {"throughput.py", "latency.py", "memory.py", "web_server.py"} <= names
    assert not names & {"common.py", "tasks.py", "__init__.py", "memory_stack.py"}


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_quick_run(script, tmp_path, settings_env):
    """settings_env: the test database migrated and emptied, the Redis db flushed (and flushed again after)."""
    assert quick_run_problems(script, bench_env(tmp_path)) == []


# --- the checker and the --quick helpers, on scripts written for the purpose -----------------------------------

def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "bench_sample.py"
    path.write_text(f"import argparse, sys\nsys.path.insert(0, {str(BENCH)!r})\nfrom common import parse_args, "
                    f"require_figures\n{body}\nif __name__ == '__main__':\n    main()\n")
    return path


_WITH_QUICK = """
FIGURES = ("speed",)
def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=1000)
    args = parse_args(parser, {"size": 3})
    value = VALUE
    print(f"speed {value} size {args.size}")
    require_figures({"speed": value})
"""


@pytest.mark.slow
def test_checker_passes_a_quick_script_with_its_figures(tmp_path):
    script = _script(tmp_path, _WITH_QUICK.replace("VALUE", "2.5"))
    assert quick_run_problems(script, bench_env(tmp_path), timeout=30) == []
    run = subprocess.run([sys.executable, str(script), "--quick"], capture_output=True, text=True, timeout=30)
    assert run.stdout == "speed 2.5 size 3\n"


@pytest.mark.slow
@pytest.mark.parametrize("body, problem", [
    ("FIGURES = ('speed',)\ndef main():\n    argparse.ArgumentParser().parse_args()\n    print('speed 1')",
     "exited 2"),
    ("def main():\n    parse_args(argparse.ArgumentParser(), {})\n    print('speed 1')", "declares no FIGURES"),
    ("FIGURES = ('speed', 'ratio')\ndef main():\n    parse_args(argparse.ArgumentParser(), {})\n    print('speed 1')",
     "printed no ['ratio']"),
    (_WITH_QUICK.replace("VALUE", "float('nan')"), "exited 1"),
    ("FIGURES = ('speed',)\ndef main():\n    parse_args(argparse.ArgumentParser(), {})\n    print('speed 1')\n"
     "    raise RuntimeError('zero jobs completed')", "exited 1"),
    ("FIGURES = ('speed',)\ndef main():\n    parse_args(argparse.ArgumentParser(), {})\n    print('speed 1')\n"
     "    import time\n    time.sleep(60)", "timed out after 2 s"),
], ids=["no --quick", "no FIGURES", "a label not printed", "a NaN figure", "an exception", "a hang"])
def test_checker_fails_a_broken_script(tmp_path, body, problem):
    problems = quick_run_problems(_script(tmp_path, body), bench_env(tmp_path), timeout=2 if "sleep" in body else 30)
    assert len(problems) == 1 and problem in problems[0], problems


def _common():
    spec = importlib.util.spec_from_file_location("bench_common_under_test", BENCH / "common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_require_figures_refuses_none_and_nan_only(capsys):
    common = _common()
    common.require_figures({"a": 1.0, "b": 0.0, "no answer": math.inf})
    with pytest.raises(SystemExit, match="no figure for b, c"):
        common.require_figures({"a": 1.0, "b": None, "c": math.nan})


def test_quick_takes_the_small_sizes_unless_given(monkeypatch):
    common = _common()

    def parsed(*argv):
        monkeypatch.setattr(sys, "argv", ["bench", *argv])
        parser = common.argparse.ArgumentParser()
        parser.add_argument("--jobs", type=int, default=2000)
        parser.add_argument("--rounds", type=int, default=3)
        args = common.parse_args(parser, {"jobs": 100, "rounds": 1})
        return args.quick, args.jobs, args.rounds

    assert parsed() == (False, 2000, 3)
    assert parsed("--quick") == (True, 100, 1)
    assert parsed("--quick", "--jobs", "500") == (True, 500, 1)
