"""What a library or request title is made of (pure): the book's own title and its series/edition decoration.

Plex albums tagged from Audible-style metadata carry the series in the title ("The Name of the Wind: The
Kingkiller Chronicle, Book 1", "The Eye of the World: Book One of The Wheel of Time", "Leviathan Wakes
(Expanse #1)", "Wheel of Time 1: The Eye of the World"). `title_shape` turns a title into the forms the
book could be known by:

- the whole title, normalised (`normalize_title`);
- the title without its decoration: a tail after ":", " - ", "(" or "[" that names a position or an
  edition (Book/Volume/Part N, #N, "Book One of …", Series/Saga/Chronicle(s)/Trilogy/Cycle, Edition,
  Unabridged, Dramatized, Full Cast, "A Novel"), a last ", Book 1"-style segment, and a leading "Series N:"
  prefix;
- *conditional* forms: the title without a first or last part that names no position ("Mistborn: The Final
  Empire", "Leviathan Wakes: The Expanse"). That part may be the series name or part of the book's own
  title; such a form only counts when the other title's decoration names that series (`Form.needs_series`).

The decoration itself is never a form: "Children of Ruin: Children of Time, Book 2" is known as "children of
ruin", never as "children of time" (a series is often named after its first book). The positions a
decoration names ("Book 3", "#4", a leading "Wheel of Time 1") are kept too: two titles that name different
ones are different books, however alike the rest ("The Wheel of Time, Book 3" / "…, Book 4").
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

from rapidfuzz import fuzz as rf_fuzz

_WORD = re.compile(r"[^\W_]+")  # letters and digits of any script: "海辺のカフカ" is a word too
_APOSTROPHE = re.compile(r"['\u2019]")
_PARENTHETICAL = re.compile(
    r"\s*[\(\[](?:unabridged|abridged|full[ -]cast(?: edition)?|dramati[sz]ed|narrated by [^\)\]]*)[\)\]]",
    re.IGNORECASE)
_SUFFIX = re.compile(r"\s*(?::\s*a (?:novel|thriller|memoir)|[,:]?\s+book\s+\d+)\s*$", re.IGNORECASE)

_NUMBER = (r"(?:\d+(?:\.\d+)?|[ivxl]+|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|first|second"
           r"|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth)")
_POSITION = rf"(?:(?:book|bk|volume|vol|part|no|number)\.?\s*{_NUMBER}|#\s*\d+(?:\.\d+)?)"
# The number of a position ("Book One", "#2", "Part IV"), in group 1 or 2.
_POSITION_NUMBER = re.compile(
    rf"(?<![a-z0-9])(?:(?:book|bk|volume|vol|part|no|number)\.?\s*({_NUMBER})|#\s*(\d+(?:\.\d+)?))(?![a-z0-9])")
_PREFIX_NUMBER = re.compile(r"\s(\d{1,3}|[ivx]+)$")  # the N of a leading "Wheel of Time 1"
_NUMBER_WORDS = {word: str(value) for value, words in enumerate([
    (), ("one", "first"), ("two", "second"), ("three", "third"), ("four", "fourth"), ("five", "fifth"),
    ("six", "sixth"), ("seven", "seventh"), ("eight", "eighth"), ("nine", "ninth"), ("ten", "tenth"),
    ("eleven",), ("twelve",)]) for word in words}
_ROMAN = {"i": 1, "v": 5, "x": 10, "l": 50}
_EDITION = r"unabridged|abridged|dramati[sz]ed|dramati[sz]ation|full[- ]cast(?: edition)?|a novel|a thriller|a memoir"
# A part of a title that says where the book sits in a series, or which edition it is.
_DECORATION_WORD = re.compile(
    rf"(?<![a-z0-9]){_POSITION}(?![a-z0-9])|\b(?:series|saga|chronicles?|trilogy|cycle|edition|{_EDITION})\b")
# A part that is only a position or an edition, e.g. the ", Book 1" of "Mistborn, Book 1".
_ONLY_DECORATION = re.compile(rf"^(?:{_POSITION}|{_EDITION})$")
# "Wheel of Time 1", "The Expanse Book 2", "Discworld #3": a leading "Series N" part.
_SERIES_PREFIX = re.compile(rf"^[a-z].*?\s(?:{_POSITION}|\d{{1,3}}|[ivx]+)$")
# Words that say where a book sits, removed from a decoration to leave the series name.
_POSITION_WORDS = re.compile(rf"(?<![a-z0-9])(?:{_POSITION}|\d{{1,3}})(?![a-z0-9])|\b(?:series|saga|{_EDITION})\b")
_LEADING_FILLER = re.compile(r"^(?:(?:of|the|a|an)\s+)+")
# Split points of a title: the main ones (a subtitle or a parenthetical starts) and commas.
_MAJOR = re.compile(r"\s*(?::|\s[-\u2013\u2014]\s|[\(\[])\s*")
_COMMA = re.compile(r"\s*,\s*")
_FAST = re.compile(r"[:\(\[,#\-\u2013\u2014]")  # a title with none of these has one form
SERIES_NAME_FLOOR = 85.0  # two series names are the same at this ratio ("Kingkiller Chronicle(s)")


class Form(NamedTuple):
    """One way a book's title may be written: normalised words, and the series name the other title's
    decoration must carry for this form to count ("" = always counts)."""
    text: str
    needs_series: str = ""


class TitleShape(NamedTuple):
    forms: tuple[Form, ...]
    series: tuple[str, ...]  # the series names its decoration carries, normalised
    positions: tuple[str, ...] = ()  # the places in a series its decoration names ("1", "0.5")


def normalize_title(title: str) -> str:
    """Lower-case words only, without "(Unabridged)"-style parentheticals, a trailing ": a novel" or ", book N"."""
    text = _without_edition(title).lower()
    if "book" in text or ": a " in text:  # the guards spare most titles two regular expressions (bench/scan.py)
        text = _SUFFIX.sub("", text)
    return " ".join(_WORD.findall(_APOSTROPHE.sub("", text).replace("&", " and ")))


def _without_edition(title: str) -> str:
    return _PARENTHETICAL.sub("", title.strip()) if "(" in title or "[" in title else title.strip()


def series_name(decoration: str) -> str:
    """The series a decoration names, normalised: "Book One of The Wheel of Time" → "wheel of time"."""
    words = " ".join(_WORD.findall(_POSITION_WORDS.sub(" ", _APOSTROPHE.sub("", decoration.lower()))))
    return _LEADING_FILLER.sub("", words)


def positions_in(decoration: str) -> list[str]:
    """The series positions a decoration names, as numbers: "Book One of …" and "(… #1)" both → ["1"]."""
    return [_number(word or digits) for word, digits in _POSITION_NUMBER.findall(decoration.lower())]


def _number(token: str) -> str:
    if token in _NUMBER_WORDS:
        return _NUMBER_WORDS[token]
    if token[0].isdigit():
        return format(float(token), "g")  # "01" and "1.0" are 1
    values = [_ROMAN[letter] for letter in token]  # "iv" is 4: a smaller numeral before a larger subtracts
    return str(sum(-v if i + 1 < len(values) and v < values[i + 1] else v for i, v in enumerate(values)))


def same_series(name: str, names: tuple[str, ...]) -> bool:
    return bool(name) and any(rf_fuzz.ratio(name, other) >= SERIES_NAME_FLOOR for other in names)


@lru_cache(maxsize=65536)
def title_shape(title: str) -> TitleShape:
    """Every form of `title` (the whole title first) and the series names its decoration carries."""
    whole = normalize_title(title)
    if not _FAST.search(title):
        return TitleShape((Form(whole),), ())
    forms: dict[str, str] = {whole: ""}
    series: list[str] = []
    positions: list[str] = []
    core = _strip_tail_decoration(_without_edition(title).lower(), series, positions)
    _add(forms, core, "")
    splits = [match for match in _MAJOR.finditer(core) if match.start() > 0 and core[match.end():].strip(" )]")]
    if splits:
        first, rest = core[:splits[0].start()], core[splits[0].end():]
        first_words = " ".join(_WORD.findall(first))
        if _SERIES_PREFIX.match(first_words) or "#" in first:  # "Wheel of Time 1: …"
            series.append(series_name(first))
            number = _PREFIX_NUMBER.search(first_words)
            positions.extend(positions_in(first) or ([_number(number.group(1))] if number else []))
            _add(forms, rest, "")
            splits = splits[1:]
        else:  # "Mistborn: The Final Empire": the first part may be the series, or part of the title
            _add(forms, rest, series_name(first) or first)
    if splits:  # "Leviathan Wakes: The Expanse": the last part may be the series, or part of the title
        head, last = core[:splits[-1].start()], core[splits[-1].end():]
        _add(forms, head, series_name(last) or last)
    return TitleShape(tuple(Form(text, needs) for text, needs in forms.items()),
                      tuple(dict.fromkeys(name for name in series if name)), tuple(dict.fromkeys(positions)))


def _strip_tail_decoration(text: str, series: list[str], positions: list[str]) -> str:
    """`text` without its decorating tails, last first; the series names and positions they carry go into
    `series` and `positions`."""
    while True:
        cut = _decoration_start(text)
        if cut is None:
            return text
        series.append(series_name(text[cut:]))
        positions.extend(positions_in(text[cut:]))
        text = text[:cut]


def _decoration_start(text: str) -> int | None:
    """Where the last decorating tail of `text` starts: after the last main split point whose tail carries
    a decoration word, or a last comma part that is only a position or an edition; None if there is none
    (the whole title is never a tail)."""
    splits = [match for match in _MAJOR.finditer(text) if match.start() > 0]
    if splits and _DECORATION_WORD.search(text[splits[-1].end():]):
        return splits[-1].start()
    commas = [match for match in _COMMA.finditer(text) if match.start() > 0]
    if commas and _ONLY_DECORATION.match(text[commas[-1].end():].strip(" )]")):
        return commas[-1].start()
    return None


def _add(forms: dict[str, str], text: str, needs_series: str) -> None:
    """Add the normalised `text` as a form; a form that is there already keeps the weaker condition."""
    normal = normalize_title(text)
    if not normal:
        return
    if normal not in forms:
        forms[normal] = needs_series
    elif not needs_series:
        forms[normal] = ""
