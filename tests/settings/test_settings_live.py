"""Settings changed live, on a live stack: the Procfile's web line, the scheduler and a search worker pool run as real
processes; PROWLARR_URL changed through PUT /api/admin/settings reaches the next search without a restart."""
from __future__ import annotations

import time

import pytest
import requests

from builders import BEARER
from fakes.prowlarr import FakeProwlarr
from helpers import start_process, stop_process, wait_for
from web_line import WebLine

LIVE_RELOAD_LIMIT_SECONDS = 10  # the bound: every process sees a saved change within 10 s


@pytest.fixture
def stack(settings_env, tmp_path, redis_conn):
    env = settings_env[1]
    web = WebLine(env, tmp_path)
    processes = [start_process(["-m", "workers", "search_indexers", "--size", "1"], env, tmp_path / "workers.log"),
                 start_process(["scheduler.py"], env, tmp_path / "scheduler.log")]
    first, second = FakeProwlarr().start(), FakeProwlarr(api_key="the-second-prowlarr-key").start()
    try:
        web.wait_until_serving()
        yield web.url, first, second
    finally:
        web.kill()
        for process in processes:
            stop_process(process)
        first.stop()
        second.stop()


def _request(url: str, title: str) -> None:
    response = requests.post(f"{url}/api/requests", json={"title": title, "author": "Brandon Sanderson"},
                             headers=BEARER, timeout=10)
    assert response.status_code == 201, response.text


@pytest.mark.slow
def test_a_prowlarr_url_changed_on_a_live_stack_is_used_by_the_next_search(stack, bearer):
    url, first, second = stack
    saved = requests.put(f"{url}/api/admin/settings", json={"PROWLARR_URL": first.url,
                                                            "PROWLARR_API_KEY": first.api_key},
                         headers=bearer, timeout=10)
    assert saved.status_code == 200, saved.text
    _request(url, "Elantris")
    wait_for(lambda: first.searches, 30, message="the first Prowlarr to be searched")

    saved = requests.put(f"{url}/api/admin/settings", json={"PROWLARR_URL": second.url,
                                                            "PROWLARR_API_KEY": second.api_key},
                         headers=bearer, timeout=10)
    assert saved.status_code == 200 and saved.json()["settings"]["PROWLARR_API_KEY"]["set"] is True
    assert second.api_key not in saved.text
    changed_at = time.monotonic()
    _request(url, "Warbreaker")
    wait_for(lambda: second.searches, LIVE_RELOAD_LIMIT_SECONDS, message="the second Prowlarr to be searched")
    print(f"search on the new PROWLARR_URL {time.monotonic() - changed_at:.2f} s after the PUT")
    assert len(first.searches) == 1 and second.unauthorized_count == 0
    assert [q["query"] for q in second.searches] == [["Warbreaker Brandon Sanderson"]]
