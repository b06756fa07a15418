"""The layers the imports obey, lowest first, and the check that no import runs up a layer or closes a cycle.

Every module of `app`, `workers` and `scheduler.py` is read with `ast`; every import counts, a lazy one inside a
function as much as one at the top (a lazy import hides a dependency from the reader, not from the code). A
module may import modules of its own layer or of a lower one; within a layer the modules must still form no
cycle. The same layers are described in docs/design-notes.md (#layers).
"""
from __future__ import annotations

import ast
import functools
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Lowest first. An entry names a module (`app.errors`), or a package and everything under it (`app.jobs.*`);
# the longest entry that matches a module places it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # import nothing of the project: refusal base classes, the status vocabularies, input parsing, redaction
    ("base", ("app.errors", "app.statuses", "app.validation", "app.redaction.*")),
    # pure decisions and rules (no database, no network): the pipeline, the library's name rules, cron, the job
    # type registry, the notification vocabulary, paging and durations, a request message's wording
    ("pure", ("app.pipeline.*", "app.library.paths", "app.library.remote_paths", "app.library.plex_paths",
              "app.library.titles", "app.library.matching", "app.library.book_identity", "app.schedules.cron",
              "app.jobs.types", "app.notifications.targets", "app.reports.durations", "app.reports.pagination",
              "app.audiobook_requests.messages")),
    # settings and the connections they open
    ("settings", ("app.config.*", "app.db", "app.redis_connection", "app.logging_setup")),
    ("models", ("app.models.*",)),
    # thin clients of outside services, the library's files and Plex index, the settings an admin saved
    ("services", ("app.integrations.*", "app.library.*", "app.settings_store", "app.settings_rules")),
    ("jobs", ("app.jobs.*",)),
    # what runs as jobs or around them: requests, notifications, schedules, read models, the file organizer
    ("features", ("app.audiobook_requests.*", "app.notifications.*", "app.schedules.*", "app.reports.*",
                  "app.library.organizer", "app.migrations")),
    # an admin's actions that span jobs and requests
    ("admin", ("app.admin_actions.*",)),
    ("web", ("app", "app.web.*", "app.auth.*", "app.cli", "app.settings_sections", "app.gunicorn_conf",
             "app.waitress_worker")),
    ("workers", ("workers.*", "scheduler")),
]

# (importer, imported): imports allowed to run up a layer, each with its reason. Keep it empty.
ALLOWED_UP: dict[tuple[str, str], str] = {}


def _module_files() -> dict[str, Path]:
    files = {"scheduler": ROOT / "scheduler.py"}
    for package in ("app", "workers"):
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            files[".".join(parts)] = path
    return files


MODULES = _module_files()


def imports_of(module: str, path: Path, known: Iterable[str]) -> set[str]:
    """The project modules `module` imports, lazy ones included (`from a import b` is `a.b` when that is a
    module, else `a`)."""
    known = set(known)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import a.b.c` of a name inside a module: its module
                target = target.rpartition(".")[0]
            if target and target != module:
                found.add(target)
    return found


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None  # (length of the entry, layer index)
    for index, (_, entries) in enumerate(LAYERS):
        for entry in entries:
            prefix = entry.removesuffix(".*")
            matches = module == prefix or (entry.endswith(".*") and module.startswith(prefix + "."))
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    return None if best is None else best[1]


@functools.cache
def import_graph() -> dict[str, set[str]]:
    """module → the project modules it imports (read once per session)."""
    return {module: imports_of(module, path, MODULES) for module, path in MODULES.items()}


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            low, high = layer_of(module), layer_of(target)
            if low is not None and high is not None and high > low and (module, target) not in ALLOWED_UP:
                found.append(f"{module} ({LAYERS[low][0]}) imports {target} ({LAYERS[high][0]})")
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(root: str) -> None:  # iterative: the graph is deep enough to matter for recursion
        nonlocal counter
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(found)


def test_every_module_has_a_layer():
    assert [module for module in sorted(MODULES) if layer_of(module) is None] == []


def test_no_import_runs_up_a_layer():
    assert upward_imports(import_graph()) == []


def test_no_import_cycle():
    assert cycles(import_graph()) == []


def test_models_and_the_pipeline_know_nothing_of_each_other():
    """The pipeline's decisions are pure (no models); the models name their statuses from app/statuses.py, not the
    pipeline's vocabulary. The layers forbid the first; the second is allowed by them (pure is lower), so it is
    checked here."""
    graph = import_graph()
    crossing = [(module, target) for module, targets in graph.items() for target in targets
                for a, b in (("app.models", "app.pipeline"), ("app.pipeline", "app.models"))
                if (module == a or module.startswith(a + ".")) and (target == b or target.startswith(b + "."))]
    assert crossing == []


def test_every_allowed_exception_is_still_an_import():
    graph = import_graph()
    assert [pair for pair in ALLOWED_UP if pair[1] not in graph.get(pair[0], set())] == []


def test_the_checks_see_lazy_imports_an_upward_import_and_a_cycle(tmp_path):
    """The checks can fail: a lazy import inside a function is an edge, one that runs up is reported, and a
    cycle through it is found."""
    path = tmp_path / "fence.py"
    path.write_text("def f():\n    from app.jobs.logger import write\n    import app.models\n")
    edges = imports_of("app.jobs.fence", path, ["app.jobs.logger", "app.models", "app.jobs.fence"])
    assert edges == {"app.jobs.logger", "app.models"}
    graph = {"app.models": {"app.jobs.state"}, "app.jobs.state": {"app.jobs.fence"}, "app.jobs.fence": edges,
             "app.jobs.logger": set()}
    assert upward_imports(graph) == ["app.models (models) imports app.jobs.state (jobs)"]
    assert cycles(graph) == [["app.jobs.fence", "app.jobs.state", "app.models"]]
