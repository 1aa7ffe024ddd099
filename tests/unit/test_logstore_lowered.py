"""Case-blind regex search on ASCII chunks runs a rewritten case-sensitive pattern over the
lowercased text; it must match exactly the lines the IGNORECASE pattern matches."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matui.engine.logstore import LogStore, _lowered_pattern, _matcher

ATOMS = [
    "a",
    "B",
    "z",
    "Q",
    "0",
    "7",
    " ",
    ":",
    "_",
    "-",
    r"\.",
    r"\d",
    r"\w",
    r"\W",
    r"\s",
    r"\S",
    r"\D",
    r"\b",
    r"\B",
    ".",
    "[A-C]",
    "[a-c]",
    "[^B]",
    "[^a-c]",
    "[X-b]",
    "[@-Z]",
    r"[\w-]",
    r"[^\W_]",
    "[0-9A-F]",
    "(?:A|b)",
    "(X)",
    "(?:ab|AB|Ab)",
    "(?=B)",
    "(?!a)",
    "(?<=A)",
    "(?<!b)",
    "^",
    "$",
    r"\A",
    r"\Z",
]
UNQUANTIFIED = ("^", "$", r"\A", r"\Z", r"\b", r"\B")
QUANTIFIERS = ["", "", "", "*", "+", "?", "{2}", "{1,3}", "*?", "+?"]

texts = st.text(alphabet="aAbBcCqQxXzZ09 :_-.\t@[]^", max_size=40)


@st.composite
def patterns(draw: st.DrawFn) -> str:
    parts = draw(
        st.lists(
            st.tuples(st.sampled_from(ATOMS), st.sampled_from(QUANTIFIERS)), min_size=1, max_size=6
        )
    )
    out = ""
    for atom, quantifier in parts:
        if atom in UNQUANTIFIED or atom.startswith(("(?=", "(?!", "(?<")):
            quantifier = ""
        out += atom + quantifier
    if draw(st.booleans()) and "(X)" in out:
        out += r"\1"
    return out


@settings(max_examples=600, deadline=None)
@given(patterns(), st.lists(texts, min_size=1, max_size=8))
def test_lowered_pattern_matches_like_ignorecase(pattern: str, lines: list[str]) -> None:
    lowered = _lowered_pattern(pattern)
    assert lowered is not None, pattern
    original = re.compile(pattern, re.IGNORECASE | re.MULTILINE)
    text = "\n".join(lines)
    assert [m.span() for m in lowered.finditer(text.lower())] == [
        m.span() for m in original.finditer(text)
    ], pattern


@pytest.mark.parametrize("pattern", ["(?-i:ERROR)", "a(?-i:b)c"])
def test_case_sensitive_groups_keep_ignorecase_search(pattern: str) -> None:
    assert _lowered_pattern(pattern) is None
    store = LogStore()
    store.append(["x ERROR y", "x error y", "aBc", "abc", "ABc"])
    expected = [i for i, line in enumerate(store.lines(0, 5)) if re.search(pattern, line, re.I)]
    assert store.find_all(pattern) == expected


def test_store_uses_the_lowered_pattern_for_a_case_blind_regex() -> None:
    assert _matcher(r"exit code: [0-9]+", True, True).lower_rx is not None
    assert _matcher(r"exit code: [0-9]+", True, False).lower_rx is None
    assert _matcher("exit cödé", True, True).lower_rx is None  # not ASCII
    store = LogStore()
    store.append(["#5 0.1 make", "#5 ERROR: EXIT CODE: 2", "Exit Code: 3", "exit code: x"])
    assert store.find_all(r"exit code: [0-9]+") == [1, 2]
    assert store.search(r"EXIT\s+code:\s\d", start=2) == 2
    assert store.search(r"EXIT\s+code:\s\d", backwards=True, start=3) == 2
