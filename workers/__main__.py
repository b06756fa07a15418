"""`python -m workers GROUP`: run the fixed pool of worker processes for one worker group."""
from __future__ import annotations

import argparse
import sys

from app.config import get_settings
from app.jobs import types
from app.logging_setup import configure_logging
from workers.pool import Pool


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers", description=__doc__)
    parser.add_argument("group", nargs="?", help="worker group: " + ", ".join(types.groups()))
    parser.add_argument("--size", type=int, help="processes (default: WORKERS_<GROUP> setting)")
    parser.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    parser.add_argument("--list", action="store_true", help="list groups and their queues")
    args = parser.parse_args(argv)
    settings = get_settings()
    configure_logging(settings.log_level)
    if args.list or not args.group:
        from app.jobs.queues import queue_names_for_group

        for group in types.groups():
            print(f"{group} ({settings.worker_counts.get(group, 1)} processes): {' '.join(queue_names_for_group(group))}")
        return 0 if args.list else 2
    if args.group not in types.groups():
        parser.error(f"unknown worker group {args.group!r}; known: {', '.join(types.groups())}")
    size = args.size if args.size is not None else settings.worker_counts.get(args.group, 1)
    return Pool(args.group, size, burst=args.burst).run()


if __name__ == "__main__":
    sys.exit(main())
