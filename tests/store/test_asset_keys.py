"""Asset names are keys, not paths: the name rule (one function, one pattern, and the two
agree), and listing with a delimiter as S3's ListObjectsV2 does, checked against a plain
Python model over random key sets and paged at every page size."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime

import pytest
from fxhost.store.assets import (
    NAME_MAX,
    NAME_PATTERN,
    AssetIndex,
    AssetSummary,
    clean_name,
    decode_cursor,
    past,
    stem_of,
)
from hypothesis import given, settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True)

# -- the name rule ---------------------------------------------------------------------

ACCEPTED = [
    "kick.wav",
    "kit/drums/kick.wav",
    "drums/kick",
    "a/b/c/d/e/f.flac",
    "...",
    ".hidden.wav",
    "kit/.wav",
    "a..b/c..",
    " take one.wav",
    "take one.wav ",
    "字/🎵.wav",
    "a\u00a0b",
    "x" * NAME_MAX,
]
REFUSED = {
    "": "empty",
    "/kick.wav": "start with '/'",
    "/": "start with '/'",
    "kit//kick.wav": "empty segments",
    "kit/": "empty segments",
    "..": "'..'",
    ".": "'.'",
    "../kick.wav": "'..'",
    "kit/../kick.wav": "'..'",
    "kit/..": "'..'",
    "kit/./kick.wav": "'.'",
    "kit\\kick.wav": "'\\'",
    "C:\\Users\\me\\take.wav": "'\\'",
    "kick\x00.wav": "control",
    "kick\n.wav": "control",
    "kick\t.wav": "control",
    "kick\x7f.wav": "control",
    "kick\x85.wav": "control",
    "x" * (NAME_MAX + 1): "at most",
}


@pytest.mark.parametrize("name", ACCEPTED)
def test_names_with_folders_are_kept_exactly_as_given(name):
    assert clean_name(name) == name
    assert NAME_PATTERN.fullmatch(name)


@pytest.mark.parametrize("name, words", list(REFUSED.items()), ids=repr)
def test_ambiguous_names_are_refused_saying_why(name, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        clean_name(name)
    if len(name) <= NAME_MAX:  # the schema's maxLength carries the length
        assert not NAME_PATTERN.fullmatch(name)


NAME_ALPHABET = ["a", "b", "/", ".", "\\", " ", "\x00", "\x1f", "\x7f", "\x85", "\xa0", "é", "\U0010ffff"]


@SETTINGS
@given(st.text(alphabet=st.sampled_from(NAME_ALPHABET), max_size=12) | st.text(max_size=20))
def test_the_pattern_in_the_schema_is_the_rule_the_server_applies(name):
    """The OpenAPI document carries NAME_PATTERN: a client (or fuzzer) that follows it is
    never refused, and one that breaks it always is."""
    try:
        clean_name(name)
        accepted = True
    except ValueError:
        accepted = False
    assert accepted is bool(NAME_PATTERN.fullmatch(name)), name


@pytest.mark.parametrize(
    "name, stem",
    [
        ("kick.wav", "kick"),
        ("kit/drums/kick.wav", "kit/drums/kick"),
        ("kit.v2/kick", "kit.v2/kick"),  # the folder's dot is not an extension
        ("kit.v2/kick.take.wav", "kit.v2/kick.take"),
        ("kit/.wav", "kit/audio"),
        (".wav", "audio"),
        ("noext", "noext"),
    ],
)
def test_stem_drops_only_the_last_segments_extension(name, stem):
    assert stem_of(name) == stem


@SETTINGS
@given(
    st.text(alphabet=st.sampled_from(["a", "/", "\ud7ff", "\U0010ffff"]), max_size=4),
    st.lists(st.text(alphabet=st.sampled_from(["a", "/", "\ud7ff", "\ud800", "\U0010ffff"]), max_size=6)),
)
def test_past_is_the_least_string_above_everything_a_prefix_starts(prefix, strings):
    """A string starts with ``prefix`` exactly when it lies in ``[prefix, past(prefix))``:
    seeking to ``past(prefix)`` skips those strings and nothing else."""
    beyond = past(prefix)
    for s in [prefix, prefix + "\U0010ffff" * 3, *strings, *(prefix + t for t in strings)]:
        inside = prefix <= s and (beyond is None or s < beyond)
        assert inside is s.startswith(prefix), (prefix, s, beyond)


def test_past_of_the_greatest_prefixes_is_none():
    assert past("\U0010ffff") is None and past("\U0010ffff" * 3) is None and past("") is None
    assert past("kit/") == "kit0" and past("a\U0010ffff") == "b"


# -- listing with a delimiter --------------------------------------------------------------

WHEN = datetime(2024, 1, 1, tzinfo=UTC)


def summary(name: str, asset_id: str) -> AssetSummary:
    return AssetSummary(
        id=asset_id,
        name=name,
        kind="upload",
        format="WAV",
        subtype="PCM_16",
        sample_rate=44100,
        channels=2,
        frames=1,
        duration=1 / 44100,
        size=46,
        sha256="0" * 64,
        created=WHEN,
    )


def index_of(entries: list[tuple[str, str]], other: list[str] = ()) -> AssetIndex:
    """An index of ``(name, id)`` for tenant "t", and names of tenants on either side of it."""
    index = AssetIndex()
    for name, asset_id in entries:
        index.put("t", summary(name, asset_id))
    for n, name in enumerate(other):
        index.put("s", summary(name, f"s{n}"))
        index.put("u", summary(name, f"u{n}"))
    return index


def model(entries, prefix: str, delimiter: str | None) -> list[tuple[str, str | None]]:
    """S3's ListObjectsV2, written the obvious way: every matching key in order, each
    rolled up into the prefix + (the part after the prefix up to and with the first
    delimiter) when it has one, a rolled-up prefix listed once. ``(name, id)`` for an
    item, ``(common prefix, None)`` for a prefix."""
    out: list[tuple[str, str | None]] = []
    for name, asset_id in sorted(entries):
        if not name.startswith(prefix):
            continue
        rest = name[len(prefix) :]
        if delimiter and delimiter in rest:
            common = prefix + rest.split(delimiter, 1)[0] + delimiter
            if (common, None) not in out:
                out.append((common, None))
        else:
            out.append((name, asset_id))
    return out


def walk(index: AssetIndex, prefix: str, delimiter: str | None, limit: int):
    """Every page from the first, following next_cursor (decoded as the API decodes it)."""
    pages, cursor = [], None
    while True:
        page = index.page("t", prefix, limit, cursor, delimiter)
        pages.append(page)
        if page.next_cursor is None:
            return pages
        cursor = decode_cursor(page.next_cursor)
        assert len(pages) < 10_000


def entries_of(page) -> list[tuple[str, str | None]]:
    """A page's items and prefixes merged in key order (each list sorted on its own)."""
    names = [(s.name, s.id) for s in page.items]
    assert names == sorted(names)
    assert page.prefixes == sorted(page.prefixes)
    return sorted(names + [(p, None) for p in page.prefixes], key=lambda e: (e[0], e[1] or ""))


KEY_ALPHABET = ["a", "b", "/", "-", "\U0010ffff"]
keys = st.text(alphabet=st.sampled_from(KEY_ALPHABET), min_size=1, max_size=6)
key_sets = st.lists(keys, max_size=30)
delimiters = st.sampled_from([None, "/", "-", "a/", "\U0010ffff", "//"])
prefixes = st.text(alphabet=st.sampled_from(KEY_ALPHABET), max_size=3)


@SETTINGS
@given(key_sets, st.lists(keys, max_size=8), prefixes, delimiters)
def test_delimiter_listing_equals_the_model_at_every_page_size(names, other, prefix, delimiter):
    entries = [(name, f"{n:04x}") for n, name in enumerate(names)]  # names repeat, ids do not
    index = index_of(entries, other)
    expected = model(entries, prefix, delimiter)
    for limit in range(1, len(expected) + 2):
        pages = walk(index, prefix, delimiter, limit)
        listed = [e for page in pages for e in entries_of(page)]
        assert listed == expected, (limit, pages)
        sizes = [len(p.items) + len(p.prefixes) for p in pages]
        # full pages, then the rest; never an empty page after a next_cursor
        assert sizes == [0] or (all(size == limit for size in sizes[:-1]) and 0 < sizes[-1] <= limit)
        assert len(pages) == max(1, -(-len(expected) // limit))


@SETTINGS
@given(key_sets, prefixes, delimiters, st.data())
def test_a_cursor_resumes_after_the_key_or_prefix_it_came_from(names, prefix, delimiter, data):
    """From any page boundary, the rest of the listing is what the model puts after it,
    whether the page ended on an asset or on a common prefix."""
    entries = [(name, f"{n:04x}") for n, name in enumerate(names)]
    index = index_of(entries)
    expected = model(entries, prefix, delimiter)
    if not expected:
        return
    limit = data.draw(st.integers(min_value=1, max_value=len(expected)))
    first = index.page("t", prefix, limit, None, delimiter)
    assert entries_of(first) == expected[:limit]
    if first.next_cursor is None:
        assert limit == len(expected)
        return
    rest = index.page("t", prefix, len(expected), decode_cursor(first.next_cursor), delimiter)
    assert entries_of(rest) == expected[limit:] and rest.next_cursor is None


def test_a_folder_of_a_sample_library():
    names = [
        "kit/drums/kick.wav",
        "kit/drums/snare.wav",
        "kit/drums/toms/hi.wav",
        "kit/bass.wav",
        "kit/fx/rise.wav",
        "kit.wav",
        "kits/other.wav",
        "loops/a.wav",
        "readme.wav",
    ]
    index = index_of([(n, f"{i:04x}") for i, n in enumerate(names)])
    top = index.page("t", "", 50, None, "/")
    assert [s.name for s in top.items] == ["kit.wav", "readme.wav"]
    assert top.prefixes == ["kit/", "kits/", "loops/"]
    kit = index.page("t", "kit/", 50, None, "/")
    assert [s.name for s in kit.items] == ["kit/bass.wav"] and kit.prefixes == ["kit/drums/", "kit/fx/"]
    drums = index.page("t", "kit/drums/", 50, None, "/")
    assert [s.name for s in drums.items] == ["kit/drums/kick.wav", "kit/drums/snare.wav"]
    assert drums.prefixes == ["kit/drums/toms/"]
    # without a delimiter, as before: every name under the prefix, no prefixes
    flat = index.page("t", "kit/", 50, None, None)
    assert [s.name for s in flat.items] == sorted(n for n in names if n.startswith("kit/"))
    assert flat.prefixes == []
    # a page of 2 ends on a prefix; the next starts after all of that folder
    first = index.page("t", "", 2, None, "/")
    assert [s.name for s in first.items] == ["kit.wav"] and first.prefixes == ["kit/"]
    second = index.page("t", "", 2, decode_cursor(first.next_cursor), "/")
    assert second.items == [] and second.prefixes == ["kits/", "loops/"]


def test_a_cursor_after_the_greatest_prefix_ends_the_listing():
    """Nothing sorts after every name that starts with U+10FFFF: a cursor there (only a
    forged one: no page ends there with more to come) gives an empty last page."""
    index = index_of([("a", "01"), ("\U0010ffffx", "02")], other=["\U0010ffff"])
    assert index.page("t", "", 5, None, "\U0010ffff").prefixes == ["\U0010ffff"]
    page = index.page("t", "", 5, ("\U0010ffff", None), "\U0010ffff")
    assert page.items == [] and page.prefixes == [] and page.next_cursor is None


class CountingName(str):
    """A name that counts how often the listing reads it (every key the walk visits)."""

    reads = 0

    def startswith(self, *args):  # type: ignore[override]
        CountingName.reads += 1
        return super().startswith(*args)


def test_a_folder_is_skipped_by_seeking_past_it_not_by_reading_it():
    """A common prefix costs one seek, O(log n): with 20,000 samples in each of five
    folders, listing the top level reads a handful of keys, not 100,000."""
    index = AssetIndex()
    for folder, n in itertools.product("abcde", range(20_000)):
        index.put("t", summary(CountingName(f"{folder}/{n:05d}.wav"), f"{folder}{n:05d}"))
    for name in ["a.wav", "c.wav", "z.wav"]:  # plain: a cursor encodes their names
        index.put("t", summary(name, name))
    CountingName.reads = 0
    page = index.page("t", "", 1000, None, "/")
    assert page.prefixes == ["a/", "b/", "c/", "d/", "e/"]
    assert [s.name for s in page.items] == ["a.wav", "c.wav", "z.wav"]
    assert CountingName.reads <= 2 * 5, CountingName.reads
    # and page by page, one entry at a time, each page as cheap
    CountingName.reads = 0
    assert len(walk(index, "", "/", 1)) == 8
    assert CountingName.reads <= 8 * 3, CountingName.reads
