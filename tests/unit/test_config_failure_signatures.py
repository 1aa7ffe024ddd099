"""``[[failure_signatures]]`` in the config: the user's own failure causes, checked like every
other key (one problem per mistake, naming the key and the fix)."""

from __future__ import annotations

from pathlib import Path

import pytest

from matui.engine.config import ConfigError, FailureSignature, Problem, parse_config

GOOD = """
[[failure_signatures]]
pattern = 'npm ERR! code E(AI_AGAIN|CONNRESET)'
cause = "npm-registry-flaky"
advice = "the npm mirror dropped us: retry"
retry = true

[[failure_signatures]]
pattern = 'license check failed'
cause = "license"
advice = "ask legal"
"""


def parse(text: str, tmp_path: Path) -> tuple[FailureSignature, ...]:
    return parse_config(text, tmp_path / "matui.toml", tmp_path).failure_signatures


def only_problem(text: str, tmp_path: Path) -> Problem:
    with pytest.raises(ConfigError) as info:
        parse(text, tmp_path)
    found = info.value.problems
    assert len(found) == 1, "\n".join(map(str, found))
    return found[0]


def entry(**keys: str) -> str:
    values = {"pattern": "'x+y'", "cause": '"c"', "advice": '"a"', **keys}
    body = "\n".join(f"{key} = {value}" for key, value in values.items() if value)
    return f"[[failure_signatures]]\n{body}\n"


def test_signatures_load_in_file_order(tmp_path: Path) -> None:
    assert parse(GOOD, tmp_path) == (
        FailureSignature(
            r"npm ERR! code E(AI_AGAIN|CONNRESET)",
            "npm-registry-flaky",
            "the npm mirror dropped us: retry",
            True,
        ),
        FailureSignature("license check failed", "license", "ask legal", False),
    )


def test_none_is_fine(tmp_path: Path) -> None:
    assert parse("", tmp_path) == ()


def test_an_invalid_regex_is_one_problem_naming_the_key_and_the_fix(tmp_path: Path) -> None:
    problem = only_problem(entry(pattern="'npm (ERR'"), tmp_path)
    assert problem.path == "failure_signatures[0].pattern"
    assert "not a valid regular expression" in problem.message
    assert "e.g. pattern = " in problem.message
    assert "\n" not in str(problem)


def test_a_pattern_matching_everything_is_refused(tmp_path: Path) -> None:
    problem = only_problem(entry(pattern="'.*'"), tmp_path)
    assert problem.path == "failure_signatures[0].pattern"
    assert "matches an empty line" in problem.message


def test_empty_pattern(tmp_path: Path) -> None:
    problem = only_problem(entry(pattern="''"), tmp_path)
    assert problem.path == "failure_signatures[0].pattern"
    assert "is empty" in problem.message


def test_missing_keys_and_bad_cause(tmp_path: Path) -> None:
    problem = only_problem(entry(cause=""), tmp_path)
    assert problem.path == "failure_signatures[0].cause"
    assert "missing" in problem.message
    problem = only_problem(entry(cause='"Not A Name"'), tmp_path)
    assert problem.path == "failure_signatures[0].cause"
    assert "a-z 0-9 -" in problem.message
    problem = only_problem(entry(advice='"  "'), tmp_path)
    assert problem.path == "failure_signatures[0].advice"


def test_wrong_types_and_unknown_keys(tmp_path: Path) -> None:
    problem = only_problem(entry(retry='"yes"'), tmp_path)
    assert problem.path == "failure_signatures[0].retry"
    assert "boolean" in problem.message
    problem = only_problem(entry(regex="'x'"), tmp_path)
    assert problem.path == "failure_signatures[0].regex"
    assert "pattern" in problem.message  # did you mean
    problem = only_problem("[failure_signatures]\npattern = 'x'\n", tmp_path)
    assert problem.path == "failure_signatures"
    assert "[[failure_signatures]]" in problem.message


def test_the_example_config_documents_them_and_they_pass(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[2] / "config.example.toml").read_text()
    section = text[text.index("\n[[failure_signatures]]") :]
    for key in ("pattern", "cause", "advice", "retry"):
        assert f"\n{key} = " in section, key
    (signature,) = parse(section, tmp_path)
    assert signature.cause == "npm-mirror-flaky" and signature.retry is True
