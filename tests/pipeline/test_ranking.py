"""Ranking releases, by table: the gates, every result ranked before any cut, format and seeders, priorities,
string similarity and normalisation."""
from __future__ import annotations

import pytest

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
