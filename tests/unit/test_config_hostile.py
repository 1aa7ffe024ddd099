"""Hostile values in the config file: every one is a ConfigError naming its key, never a crash.

(The rig test ``tests/integration/test_hostile_input.py`` runs what the config accepts against a
real sshd; these are the quick cases for the checker itself.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
import tomli_w

from matui.engine.config import ConfigError, load_config, parse_config


@pytest.fixture
def base(tmp_path: Path) -> Path:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM scratch\n")
    return tmp_path


def image(**overrides: object) -> dict[str, object]:
    return {
        "name": "registry.example.com/team/app",
        "tags": ["1.0"],
        "context": "app",
        "platforms": ["linux/amd64"],
        **overrides,
    }


def problems(base: Path, document: dict[str, object]) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_config(tomli_w.dumps(document), None, base)
    return [(p.path, p.message) for p in caught.value.problems]


@pytest.mark.parametrize(
    ("overrides", "path", "words"),
    [
        ({"dockerfile": "a" * 300}, "images[0].dockerfile", "File name too long"),
        ({"dockerfile": "d/" * 3000 + "Dockerfile"}, "images[0].dockerfile", "too long"),
        ({"context": "c" * 300}, "images[0].context", "File name too long"),
    ],
)
def test_paths_the_system_cannot_look_up(
    base: Path, overrides: dict[str, object], path: str, words: str
) -> None:
    [(where, message)] = problems(base, {"images": [image(**overrides)]})
    assert where == path and "cannot be looked up" in message and words in message


def test_identity_and_known_hosts_too_long(base: Path) -> None:
    host = {"name": "h", "arch": "amd64", "address": "build.example.com"}
    found = problems(base, {"hosts": [{**host, "identity": "i" * 300, "known_hosts": "k" * 300}]})
    assert [p for p, _ in found] == ["hosts[0].identity", "hosts[0].known_hosts"]
    assert all("cannot be looked up: File name too long" in m for _, m in found)


def test_symlink_loop_is_reported(base: Path) -> None:
    (base / "app" / "loop").symlink_to("loop")
    [(where, message)] = problems(base, {"images": [image(dockerfile="loop")]})
    assert where == "images[0].dockerfile" and "cannot be looked up" in message


def test_a_dockerfile_that_is_a_directory(base: Path) -> None:
    (base / "app" / "sub").mkdir()
    [(where, message)] = problems(base, {"images": [image(dockerfile="sub")]})
    assert where == "images[0].dockerfile"
    assert message.startswith("there is no Dockerfile at ") and "looked up" not in message


@pytest.mark.parametrize("char", ["\x85", "\x9b", "\x00", "\n", "\x1b"])
@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        ({"build_args": {"A": "x{c}y"}}, "images[0].build_args.A"),
        ({"labels": {"k": "{c}"}}, "images[0].labels.k"),
        ({"target": "t{c}"}, "images[0].target"),
        ({"tags": ["1.0{c}"]}, "images[0].tags[0]"),
    ],
)
def test_control_characters_c0_and_c1_are_refused(
    base: Path, char: str, overrides: dict[str, object], path: str
) -> None:
    def fill(value: object) -> object:
        if isinstance(value, str):
            return value.replace("{c}", char)
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    [(where, message)] = problems(base, {"images": [image(**fill(overrides))]})  # type: ignore[arg-type]
    assert where == path
    assert f"0x{ord(char):02x}" in message


def test_undecodable_bytes_make_the_file_unreadable(base: Path) -> None:
    config = base / "matui.toml"
    text = tomli_w.dumps({"images": [image(build_args={"A": "x\udcff"})]})
    config.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert [p.path for p in caught.value.problems] == ["config"]
    assert "is not UTF-8 text" in str(caught.value)


@pytest.mark.parametrize(
    "value", ["$(touch x)", "`touch x`", "'; touch x; '", "-o", "--push=false", "é🙂\u200f", ""]
)
def test_build_arg_and_label_values_are_kept_exactly(base: Path, value: str) -> None:
    document = {"images": [image(build_args={"A": value}, labels={"k": value})]}
    [parsed] = parse_config(tomli_w.dumps(document), None, base).images
    assert parsed.build_args["A"] == value and parsed.labels["k"] == value
