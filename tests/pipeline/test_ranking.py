"""Pure decisions of the pipeline, by table: ranking, download-state maps, torrent files, polling policy."""
from __future__ import annotations

import base64

import pytest

from app.integrations.torrentfile import (
    TorrentFileError,
    bdecode,
    bencode,
    magnet_uri,
    make_torrent,
    parse_magnet,
    read_torrent,
)
from app.pipeline.download_state import DownloadState as D
from app.pipeline.download_state import qbittorrent_state, transmission_state
from app.pipeline.monitor_policy import moved, next_delay, progress_to_log, stalled_too_long
from app.pipeline.ranking import Release, acceptable, detect_format, dice, normalize, rank_releases

MiB = 1024 * 1024
TITLE, AUTHOR = "The Way of Kings", "Brandon Sanderson"


def rel(title, size=700 * MiB, seeders=20, **kw):
    return Release(title=title, size=size, seeders=seeders, **kw)


# --- ranking --------------------------------------------------------------------------------------

@pytest.mark.parametrize("torrent_title,size,seeders,accepted,reason", [
    ("Brandon Sanderson - The Way of Kings (Unabridged) [M4B]", 700 * MiB, 25, True, None),
    ("The Way of Kings by Brandon Sanderson MP3 64kbps", 400 * MiB, 3, True, None),
    ("BrandonSanderson-TheWayOfKings.m4b", 700 * MiB, 5, True, None),                      # CamelCase (#219)
    ("Brandon Sanderson - The Way of Kings [M4B]", 5 * MiB, 50, False, "too small"),      # an ebook/sample
    ("Brandon Sanderson - Words of Radiance [M4B]", 700 * MiB, 50, False, "title words"),  # another book
    ("The Way of Kings [M4B]", 700 * MiB, 50, False, "author not"),                        # author missing
    ("Kings (Unabridged) - Brandon Sanderson [M4B]", 700 * MiB, 50, False, "title words"),
])
def test_gates_and_acceptance(torrent_title, size, seeders, accepted, reason):
    ranked = rank_releases([rel(torrent_title, size, seeders)], TITLE, AUTHOR)[0]
    assert (ranked.rejected is None) is accepted, ranked.summary()
    if reason:
        assert reason in ranked.rejected


def test_every_result_is_ranked_before_any_cut():
    """The original cut Prowlarr's raw order to 50 before ranking (#277): the best result could be lost."""
    noise = [rel(f"Random Book {i} - Somebody [MP3]", seeders=100) for i in range(120)]
    best = rel("Brandon Sanderson - The Way of Kings (Unabridged) [M4B]", seeders=30)
    ranked = rank_releases(noise + [best], TITLE, AUTHOR)
    assert len(ranked) == 121 and ranked[0].release is best
    assert acceptable(ranked) == [ranked[0]]


def test_format_and_seeders_order_the_matches():
    m4b = rel("Brandon Sanderson - The Way of Kings [M4B]", seeders=5)
    mp3 = rel("Brandon Sanderson - The Way of Kings [MP3]", seeders=5)
    popular_mp3 = rel("Brandon Sanderson - The Way of Kings MP3", seeders=500)
    ranked = {r.release.title: r for r in rank_releases([mp3, popular_mp3, m4b], TITLE, AUTHOR)}
    # format: M4B 10, MP3 4; seeders: min(15, 6·log10(s+1)); size 15 (no runtime known); match 60
    assert ranked[m4b.title].breakdown == pytest.approx(
        {"format": 10.0, "seeders": 4.669, "size": 15.0, "match": 60.0, "total": 89.669}, abs=0.01)
    assert ranked[mp3.title].score == pytest.approx(ranked[m4b.title].score - 6.0)
    assert ranked[popular_mp3.title].breakdown["seeders"] == 15.0  # capped: availability can outweigh format
    assert rank_releases([mp3, m4b], TITLE, AUTHOR)[0].release is m4b


def test_higher_priority_means_higher_numbers_and_ties_keep_newest_first():
    older = rel("Brandon Sanderson - The Way of Kings [M4B]", publish_date="2020-01-01T00:00:00Z")
    newer = rel("Brandon Sanderson - The Way of Kings [M4B]", publish_date="2024-01-01T00:00:00Z")
    assert rank_releases([older, newer], TITLE, AUTHOR)[0].release is newer


def test_a_script_tag_in_a_title_is_just_text():
    hostile = rel('Brandon Sanderson - The Way of Kings <script>alert(1)</script> "><img src=x> [M4B]')
    ranked = rank_releases([hostile], TITLE, AUTHOR)[0]
    assert ranked.rejected is None and ranked.summary()["title"] == hostile.title  # unchanged, escaped on output


@pytest.mark.parametrize("a,b,expected", [
    ("night", "nacht", 0.25), ("abc", "abc", 1.0), ("a", "a", 1.0), ("a", "b", 0.0),
    ("the way of kings", "thewayofkings", 1.0), ("", "x", 0.0),
])
def test_dice_follows_string_similarity(a, b, expected):
    assert dice(a, b) == pytest.approx(expected)


def test_normalisation_and_formats():
    assert normalize("TheWayOfKings") == "the way of kings"
    assert normalize("Straße — Café: Ça") == "strasse cafe ca"
    assert normalize("Ender's_Game") == "enders game"
    assert detect_format("Book [m4b]") == "M4B" and detect_format("Book 64kbps MP3") == "MP3"
    assert detect_format("Book MP3s") is None and detect_format("Book (FLAC)") == "FLAC"


# --- download states ---------------------------------------------------------------------------------

@pytest.mark.parametrize("state,progress,expected", [
    ("uploading", 1, D.COMPLETE), ("stalledUP", 1, D.COMPLETE), ("queuedUP", 1, D.COMPLETE),
    ("pausedUP", 1, D.COMPLETE), ("stoppedUP", 1, D.COMPLETE), ("forcedUP", 1, D.COMPLETE),  # 4.x and 5.x (#57)
    ("checkingUP", 1, D.CHECKING), ("checkingResumeData", 0, D.CHECKING), ("checkingDL", 0.3, D.CHECKING),
    ("downloading", 0.4, D.DOWNLOADING), ("stalledDL", 0, D.DOWNLOADING), ("forcedDL", 0.2, D.DOWNLOADING),
    ("moving", 1, D.MOVING), ("metaDL", 0, D.METADATA), ("forcedMetaDL", 0, D.METADATA),
    ("queuedDL", 0, D.QUEUED), ("pausedDL", 0.5, D.PAUSED), ("stoppedDL", 0.5, D.PAUSED),
    ("error", 0.5, D.FAILED), ("missingFiles", 1, D.FAILED), ("stalledUP", 0.99, D.DOWNLOADING),
    ("somethingNew", 0.2, D.UNKNOWN), ("somethingNew", 1, D.COMPLETE),
])
def test_qbittorrent_states(state, progress, expected):
    assert qbittorrent_state(state, progress) is expected


@pytest.mark.parametrize("status,percent,error,meta,expected", [
    (6, 1, 0, 1, D.COMPLETE), (5, 1, 0, 1, D.COMPLETE), (0, 1, 0, 1, D.COMPLETE),  # stopped after seeding
    (0, 0.86, 0, 1, D.PAUSED), (1, 0, 0, 1, D.CHECKING), (2, 0.5, 0, 1, D.CHECKING), (3, 0, 0, 1, D.QUEUED),
    (4, 0.3, 0, 1, D.DOWNLOADING), (4, 0, 0, 0, D.METADATA), (6, 1, 1, 1, D.COMPLETE),  # tracker warning ≠ failure
    (4, 0.3, 2, 1, D.DOWNLOADING), (0, 0, 3, 1, D.FAILED),
])
def test_transmission_states(status, percent, error, meta, expected):
    assert transmission_state(status, percent, error, meta) is expected


# --- torrent files and magnets -----------------------------------------------------------------------

def test_info_hash_of_a_made_torrent_and_round_trip(tmp_path):
    folder = tmp_path / "Author - Book"
    folder.mkdir()
    (folder / "a.mp3").write_bytes(b"x" * 300_000)
    (folder / "b.mp3").write_bytes(b"y" * 10)
    data = make_torrent(folder)
    meta = read_torrent(data)
    assert meta.name == "Author - Book" and meta.total_size == 300_010 and len(meta.info_hash) == 40
    assert bencode(bdecode(data)) == data


@pytest.mark.parametrize("garbage", [b"", b"not a torrent", b"d4:infoi1ee", b"d4:info", b"l1:ae"])
def test_garbage_is_not_a_torrent(garbage):
    with pytest.raises(TorrentFileError):
        read_torrent(garbage)


def test_magnets_in_hex_and_base32():
    hex_hash = "0123456789abcdef0123456789abcdef01234567"
    assert parse_magnet(magnet_uri(hex_hash, "A B")).info_hash == hex_hash
    b32 = base64.b32encode(bytes.fromhex(hex_hash)).decode()
    assert parse_magnet(f"magnet:?xt=urn:btih:{b32}&dn=x").info_hash == hex_hash
    assert parse_magnet(f"magnet:?xt=urn:btih:{hex_hash.upper()}").name == ""
    for bad in ("http://x", "magnet:?dn=nohash", "magnet:?xt=urn:btih:123"):
        with pytest.raises(TorrentFileError):
            parse_magnet(bad)


# --- polling policy --------------------------------------------------------------------------------------

def test_polling_backs_off_while_nothing_moves():
    assert [next_delay(n) for n in range(7)] == [10, 20, 40, 80, 160, 300, 300]
    assert next_delay(0, 1.0) == 1.0 and next_delay(99) == 300


@pytest.mark.parametrize("previous,percent,log", [
    (None, 0, True), (0, 0, False), (0, 1, True), (3, 4, True), (4, 5, True), (5, 9, False), (5, 10, True),
    (10, 12, False), (95, 100, True), (None, 37, True),
])
def test_progress_is_logged_at_5_percent_steps_and_the_first_5(previous, percent, log):
    assert progress_to_log(previous, percent) is log


def test_stall_rules():
    assert moved(None, 0) and moved(10, 11) and not moved(10, 10)
    assert stalled_too_long(6 * 3600, 6 * 3600) and not stalled_too_long(100, 6 * 3600)
    assert not stalled_too_long(10**9, 0)  # 0 disables the limit
