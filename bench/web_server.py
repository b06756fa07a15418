"""The web line's HTTP engine: requests/s of a logged-in page and /healthz, and how long each takes to answer
while slow clients hold connections, for each gunicorn worker class, against gthread (the old engine) in the
same run.

Each engine is the Procfile's gunicorn with the project's configuration (app/gunicorn_conf.py: WEB_WORKERS=1,
WEB_THREADS=4) and only the worker class changed: `gthread`, `waitress` (app/waitress_worker.py, the
default) and `gevent` (when the gevent package is installed; the app's psycopg2 calls then block the whole
process, as nothing makes them cooperative). Clients are threads of this process on the same machine, so
read the ratios, not the absolute figures.

    python bench/web_server.py [--rounds 3] [--seconds 5] [--clients 8] [--slow 50] [--engines gthread,waitress,gevent]
                               [--repeat 10] [--answer-timeout 5] [--quick]

The engines alternate within each round and each figure is the median over the rounds (this machine is noisy).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from common import (
    BENCH_DATABASE_URL,
    BENCH_INSTANCE_DIR,
    BENCH_REDIS_URL,
    ROOT,
    free_port,
    median,
    parse_args,
    percentile,
    require_figures,
    setup,
    wait_until,
)

# what the output must hold (tests/bench/test_bench_quick.py checks it)
FIGURES = ("/admin/logs req/s", "/healthz req/s", "slow clients", "gthread", "waitress")

PASSWORD = "bench-password"
WORKER_CLASSES = {"gthread": "gthread", "waitress": "app.waitress_worker.WaitressWorker", "gevent": "gevent"}
PAGE = "/admin/logs"
NO_ANSWER = float("inf")


class Server:
    """gunicorn with the project's configuration and one worker class, on a free loopback port."""

    def __init__(self, engine: str, workdir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "DATABASE_URL": BENCH_DATABASE_URL, "REDIS_URL": BENCH_REDIS_URL,
               "INSTANCE_DIR": str(workdir), "ADMIN_PASSWORD": PASSWORD, "SECRET_KEY": "bench-secret",
               "HOST": "127.0.0.1", "PORT": str(self.port), "LOG_LEVEL": "warning", "PYTHONPATH": str(ROOT)}
        command = [sys.executable, "-m", "gunicorn", "--config", "python:app.gunicorn_conf",
                   "--worker-class", WORKER_CLASSES[engine]]
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until(lambda: requests.get(f"{self.url}/healthz", timeout=2).status_code == 200, 60,
                       f"{engine} to serve /healthz")
        except BaseException:  # never leave a gunicorn behind
            self.stop()
            raise

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def logged_in(url: str) -> requests.Session:
    session = requests.Session()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                      session.get(f"{url}/login", timeout=10).text).group(1)
    reply = session.post(f"{url}/login", data={"username": "admin", "password": PASSWORD, "csrf_token": token},
                         allow_redirects=False, timeout=10)
    page = session.get(f"{url}{PAGE}", allow_redirects=False, timeout=10)
    if reply.status_code != 302 or page.status_code != 200:
        raise SystemExit(f"bench broken: could not log in (POST /login {reply.status_code}, {PAGE} {page.status_code})")
    return session


def requests_per_second(url: str, cookies, clients: int, seconds: float) -> float:
    """`clients` threads, each on its own keep-alive connection, GET `url` for `seconds`: answers/s."""
    counts = [0] * clients
    errors: list[str] = []
    deadline = time.monotonic() + seconds

    def client(index: int) -> None:
        with requests.Session() as session:
            session.cookies.update(cookies)
            while time.monotonic() < deadline and not errors:
                try:
                    reply = session.get(url, allow_redirects=False, timeout=30)
                except requests.RequestException as exc:
                    errors.append(f"GET {url}: {exc}")
                    return
                if reply.status_code != 200:  # a redirect to /login is a broken bench, not an answer
                    errors.append(f"GET {url} answered {reply.status_code}")
                    return
                counts[index] += 1

    threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise SystemExit(f"bench broken: {errors[0]}")
    return sum(counts) / (time.monotonic() - started)


def answer_ms(session, url: str, timeout: float = 5.0) -> float:
    started = time.perf_counter()
    try:
        session.get(url, allow_redirects=False, timeout=timeout).raise_for_status()
    except requests.RequestException:
        return NO_ANSWER
    return (time.perf_counter() - started) * 1000


def with_slow_clients(server: Server, session, slow: int, repeat: int, timeout: float) -> dict[str, float]:
    """p50 milliseconds of the page and /healthz while `slow` connections have sent one byte and wait."""
    held = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(slow)]
    try:
        for connection in held:
            connection.sendall(b"G")
        time.sleep(1)
        return {path: percentile([answer_ms(session, f"{server.url}{path}", timeout) for _ in range(repeat)], 50)
                for path in (PAGE, "/healthz")}
    finally:
        for connection in held:
            connection.close()


def measure(engine: str, args, workdir: Path) -> dict[str, float]:
    server = Server(engine, workdir)
    try:
        session = logged_in(server.url)
        for _ in range(20):  # warm up: templates compiled, connections open
            session.get(f"{server.url}{PAGE}", timeout=10)
        figures = {f"{PAGE} req/s": requests_per_second(f"{server.url}{PAGE}", session.cookies, args.clients,
                                                         args.seconds),
                   "/healthz req/s": requests_per_second(f"{server.url}/healthz", {}, args.clients, args.seconds)}
        slow = with_slow_clients(server, session, args.slow, args.repeat, args.answer_timeout)
        figures.update({f"{path} p50 ms, {args.slow} slow clients": value for path, value in slow.items()})
        return figures
    finally:
        server.stop()


def shown(value: float, timeout: float) -> str:
    return f"no answer in {timeout:g} s" if value == NO_ANSWER else f"{value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every engine, alternating")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each requests/s run")
    parser.add_argument("--clients", type=int, default=8, help="client threads of each requests/s run")
    parser.add_argument("--slow", type=int, default=50, help="slow connections held open")
    parser.add_argument("--engines", default="gthread,waitress,gevent")
    parser.add_argument("--repeat", type=int, default=10, help="answers timed while the slow connections are open")
    parser.add_argument("--answer-timeout", type=float, default=5.0,
                        help="seconds an answer may take with slow connections open (longer: no answer)")
    args = parse_args(parser, {"rounds": 1, "seconds": 1.0, "clients": 2, "slow": 8, "repeat": 2,
                               "answer_timeout": 2.0})
    engines = [name.strip() for name in args.engines.split(",")]
    if "gevent" in engines and importlib.util.find_spec("gevent") is None:
        print("gevent is not installed: left out (pip install gevent to measure it)")
        engines.remove("gevent")
    setup()  # scratch database migrated and emptied; the server processes share it
    workdir = Path(BENCH_INSTANCE_DIR) / "web"
    workdir.mkdir(parents=True, exist_ok=True)
    rounds: dict[str, list[dict[str, float]]] = {engine: [] for engine in engines}
    for index in range(args.rounds):
        for engine in engines[index % len(engines):] + engines[:index % len(engines)]:
            rounds[engine].append(measure(engine, args, workdir))
    results = {engine: {metric: median([figures[metric] for figures in runs]) for metric in runs[0]}
               for engine, runs in rounds.items()}
    baseline = results.get("gthread")
    print(f"median of {args.rounds} round(s); {args.clients} client threads for {args.seconds:.0f} s per req/s "
          f"figure; WEB_WORKERS=1, WEB_THREADS=4")
    for metric in next(iter(results.values())):
        print(f"\n{metric}")
        for engine, figures in results.items():
            ratio = ""
            if baseline and engine != "gthread" and "req/s" in metric:
                ratio = f"  (× {figures[metric] / baseline[metric]:.2f} of gthread)"
            runs = " / ".join(shown(figures_[metric], args.answer_timeout) for figures_ in rounds[engine])
            print(f"  {engine:<9} {shown(figures[metric], args.answer_timeout):>18}{ratio}   rounds: {runs}")
    # "no answer" (inf) is a figure (gthread's, with slow clients); a missing or NaN one is a broken bench
    require_figures({f"{engine} {metric}": value for engine, figures in results.items()
                     for metric, value in figures.items()})


if __name__ == "__main__":
    main()
