"""The ``secrets`` image key and the build-arg rules that keep values private: one problem per
mistake, naming the key and the fix, and never a secret-looking value quoted back."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomli_w

from matui.engine.config import ConfigError, SecretSource, parse_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def context(tmp_path: Path) -> Path:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    return tmp_path


def image(**extra: object) -> dict[str, object]:
    return {
        "name": "registry.example.com/team/app",
        "tags": ["1.0"],
        "context": ".",
        "platforms": ["linux/amd64"],
        **extra,
    }


def problems(context: Path, **extra: object) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_config(tomli_w.dumps({"images": [image(**extra)]}), None, context)
    return [(p.path, p.message) for p in caught.value.problems]


def test_env_and_file_sources_are_parsed_never_read(context: Path) -> None:
    doc = tomli_w.dumps(
        {
            "images": [
                image(
                    secrets={
                        "NPM_TOKEN": "env:NPM_TOKEN",
                        "pip.conf": "file:secrets/pip.conf",
                        "home": "file:~/.netrc",
                    }
                )
            ]
        }
    )
    [parsed] = parse_config(doc, None, context).images
    assert dict(parsed.secrets) == {
        "NPM_TOKEN": SecretSource("env", variable="NPM_TOKEN"),
        # relative to the config file's directory; nothing is read (the file need not exist)
        "pip.conf": SecretSource("file", path=context / "secrets" / "pip.conf"),
        "home": SecretSource("file", path=Path("~/.netrc").expanduser()),
    }
    assert str(parsed.secrets["NPM_TOKEN"]) == "env:NPM_TOKEN"


def test_no_secrets_by_default(context: Path) -> None:
    [parsed] = parse_config(tomli_w.dumps({"images": [image()]}), None, context).images
    assert dict(parsed.secrets) == {}


@pytest.mark.parametrize(
    ("secrets", "path", "words"),
    [
        ({"X": "NPM_TOKEN"}, "images[0].secrets.X", ["not a secret source", "env:VARIABLE"]),
        ({"X": "vault:x"}, "images[0].secrets.X", ["not a secret source", "file:PATH"]),
        ({"X": "env:"}, "images[0].secrets.X", ["not an environment variable name"]),
        ({"X": "env:1A"}, "images[0].secrets.X", ["not an environment variable name"]),
        ({"X": "env:A-B"}, "images[0].secrets.X", ["not an environment variable name"]),
        ({"X": "file:"}, "images[0].secrets.X", ["needs the path of a file"]),
        ({"a,b": "env:A"}, 'images[0].secrets."a,b"', ["not a valid name", "secret ids"]),
        ({".x": "env:A"}, 'images[0].secrets.".x"', ["not a valid name"]),
        ({"a/b": "env:A"}, 'images[0].secrets."a/b"', ["not a valid name"]),
        ({"X": 1}, "images[0].secrets.X", ["expected a string"]),
        ({"X": "env:A\n"}, "images[0].secrets.X", ["control characters (0x0a)"]),
    ],
)
def test_each_mistake_is_one_problem_naming_the_key_and_the_fix(
    context: Path, secrets: dict[str, object], path: str, words: list[str]
) -> None:
    [(where, message)] = problems(context, secrets=secrets)
    assert where == path
    for word in words:
        assert word in message, message


def test_secrets_as_an_array_is_one_problem(context: Path) -> None:
    [(where, message)] = problems(context, secrets=["NPM_TOKEN=env:NPM_TOKEN"])
    assert where == "images[0].secrets"
    assert "expected a table" in message and 'secrets = { NPM_TOKEN = "env:NPM_TOKEN" }' in message


def test_every_bad_entry_is_reported_at_once(context: Path) -> None:
    found = problems(context, secrets={"A": "x", "B": "env:1", "C": "env:OK", "D": "file:"})
    assert [path for path, _ in found] == [
        "images[0].secrets.A",
        "images[0].secrets.B",
        "images[0].secrets.D",
    ]


@pytest.mark.parametrize(
    "name", ["PATH", "HOME", "TMPDIR", "DOCKER_HOST", "BUILDX_BUILDER", "LD_PRELOAD"]
)
def test_build_args_buildx_or_docker_read_from_their_environment_are_refused(
    context: Path, name: str
) -> None:
    [(where, message)] = problems(context, build_args={name: "x"})
    assert where == f"images[0].build_args.{name}"
    assert "through its environment" in message and "rename the ARG" in message


@pytest.mark.parametrize(
    "name", ["DOCKER_VERSION", "BUILDKIT_INLINE_CACHE", "HTTP_PROXY", "VERSION"]
)
def test_ordinary_build_args_named_like_tools_are_fine(context: Path, name: str) -> None:
    [parsed] = parse_config(
        tomli_w.dumps({"images": [image(build_args={name: "1"})]}), None, context
    ).images
    assert parsed.build_args[name] == "1"


def test_a_secret_looking_build_arg_value_is_never_quoted_back(context: Path) -> None:
    found = problems(context, build_args={"API_TOKEN": "s3cr3t\nvalue", "DB_PASSWORD": 12345})
    assert [path for path, _ in found] == [
        "images[0].build_args.API_TOKEN",
        "images[0].build_args.DB_PASSWORD",
    ]
    for _, message in found:
        assert "s3cr3t" not in message and "12345" not in message
    assert "control characters (0x0a)" in found[0][1]
    assert 'quote it: DB_PASSWORD = "..."' in found[1][1]


def test_the_secret_looking_warning_points_at_secrets(context: Path) -> None:
    config = parse_config(
        tomli_w.dumps({"images": [image(build_args={"NPM_TOKEN": "abc"})]}), None, context
    )
    [warning] = config.warnings
    assert warning.startswith("images[0].build_args.NPM_TOKEN: looks like a secret")
    assert 'secrets = { NPM_TOKEN = "env:NPM_TOKEN" }' in warning
    assert "RUN --mount=type=secret,id=NPM_TOKEN" in warning
    assert "abc" not in warning


def test_the_example_config_documents_secrets(context: Path) -> None:
    """Its secrets line is valid as written (the whole file loading is test_config's)."""
    import tomllib

    text = (REPO / "config.example.toml").read_text()
    declared = tomllib.loads(text)["images"][0]["secrets"]
    [parsed] = parse_config(
        tomli_w.dumps({"images": [image(secrets=declared)]}), None, context
    ).images
    assert {str(source).partition(":")[0] for source in parsed.secrets.values()} == {"env", "file"}
