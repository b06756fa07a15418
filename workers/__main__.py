"""`python -m workers --all | GROUP [GROUP …]`: the fixed worker pools of some or all groups, under one supervisor.

  python -m workers --all                       every group (WORKERS_<GROUP> processes each): the Procfile line
  python -m workers --all --exclude g1,g2       every group but these (split the groups across hosts)
  python -m workers g1 g2 [--size N]            these groups only (N processes each)
  python -m workers --list                      the groups, their process counts and queues
"""
from __future__ import annotations

import argparse
import sys

# Worker groups that no longer exist, and the group that serves their job types now.
RETIRED_GROUPS = {"match_plex": "maintenance"}


def _one_line(exc: Exception) -> str:
    """A SettingsError's list of problems ("Invalid configuration:\\n  - A\\n  - B") on one line."""
    head, *items = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return head + (" " + "; ".join(item.lstrip("- ") for item in items) if items else "")


def _parser(groups: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m workers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("groups", nargs="*", metavar="group", help="worker groups: " + ", ".join(groups))
    parser.add_argument("--all", action="store_true", help="every worker group")
    parser.add_argument("--exclude", default="", help="with --all: comma-separated groups to leave out")
    parser.add_argument("--size", type=int, help="processes per named group (default: its WORKERS_<GROUP> setting)")
    parser.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    parser.add_argument("--list", action="store_true", help="list groups, their processes and queues")
    return parser


def _print_groups(groups: list[str], counts: dict[str, int]) -> None:
    from app.jobs.queues import queue_names_for_group

    for group in groups:
        count = counts.get(group, 1)
        print(f"{group} ({count} process{'es' if count != 1 else ''}): {' '.join(queue_names_for_group(group))}")
    print(f"`python -m workers --all` runs {sum(counts.get(group, 1) for group in groups)} worker processes "
          f"under one supervisor.")


def main(argv: list[str] | None = None) -> int:
    from app.config import SettingsError, get_settings
    from app.jobs import types

    known = types.groups()
    parser = _parser(known)
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
    except SettingsError as exc:  # one clear line, no traceback: the process stops before starting anything
        print(f"workers: {_one_line(exc)}", file=sys.stderr)
        return 2
    from app.logging_setup import configure_logging

    configure_logging(settings.log_level)
    if args.list or not (args.groups or args.all):
        _print_groups(known, settings.worker_counts)
        return 0 if args.list else 2
    sizes = _selected_sizes(parser, args, known, settings.worker_counts)
    return _supervise(sizes, settings, args.burst)


def _selected_sizes(parser: argparse.ArgumentParser, args: argparse.Namespace, known: list[str],
                    counts: dict[str, int]) -> dict[str, int]:
    from workers.supervisor import select_groups

    for group in args.groups:
        if group in RETIRED_GROUPS:
            parser.error(f"{group!r} is no longer a worker group: the {RETIRED_GROUPS[group]} group runs its jobs "
                         f"(remove its Procfile line)")
    if args.all and args.groups:
        parser.error("name groups or use --all, not both")
    if args.exclude and not args.all:
        parser.error("--exclude goes with --all")
    if args.size is not None and (args.all or args.size < 1):
        parser.error("--size N (at least 1) sets the processes of named groups; with --all use WORKERS_<GROUP>")
    excluded = [group.strip() for group in args.exclude.split(",") if group.strip()]
    try:
        sizes = select_groups(known, counts, args.groups, args.all, excluded, args.size)
    except ValueError as exc:
        parser.error(str(exc))
    if not sizes:
        parser.error("nothing to run: every selected group has 0 processes (WORKERS_<GROUP>=0)")
    return sizes


def _supervise(sizes: dict[str, int], settings, burst: bool) -> int:
    from workers.supervisor import Supervisor, check_database, check_redis, prepare_for_fork

    prepare_for_fork()  # imports only: the check below opens (and closes) the only connections made here
    checks = [lambda: check_redis(settings.redis_url), lambda: check_database(settings.effective_database_url)]
    return Supervisor(sizes, burst=burst).run(checks, settings.worker_startup_wait_seconds)


if __name__ == "__main__":
    sys.exit(main())
