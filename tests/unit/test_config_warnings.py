"""Config.warnings: build-arg names that look like secrets point to BuildKit secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomli_w

from matui.engine.config import Config, ConfigError, looks_like_secret, parse_config


@pytest.fixture
def context(tmp_path: Path) -> Path:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM scratch\n")
    return tmp_path


def image(build_args: dict[str, str], name: str = "registry.example.com/team/app") -> object:
    return {
        "name": name,
        "tags": ["1.0"],
        "context": "app",
        "platforms": ["linux/amd64"],
        "build_args": build_args,
    }


def parse(base: Path, *images: object) -> Config:
    return parse_config(tomli_w.dumps({"images": list(images)}), None, base)


@pytest.mark.parametrize(
    "name",
    [
        "NPM_TOKEN",
        "GITHUB_TOKEN",
        "NODE_AUTH_TOKEN",
        "PYPI_API_TOKEN",
        "GITHUBTOKEN",
        "DB_PASSWORD",
        "dbPassword",
        "PASSWORD2",
        "PASSWD",
        "MY_PWD",
        "PASS",
        "SECRET",
        "CLIENT_SECRET",
        "SECRETS_FILE",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "API_KEY",
        "APIKEY",
        "apiKey",
        "PRIVATE_KEY",
        "SSH_KEY",
        "SIGNING_KEY",
        "CREDENTIALS",
        "GIT_CREDENTIAL",
        "CREDS",
        "BASIC_AUTH",
        "PASSPHRASE",
    ],
)
def test_secret_looking_names(name: str) -> None:
    assert looks_like_secret(name)


@pytest.mark.parametrize(
    "name",
    [
        "VERSION",
        "AUTHOR",
        "AUTHORS",
        "TOKENIZER_MODE",
        "COMPASS_URL",
        "BYPASS_CACHE",
        "PASSTHROUGH",
        "CACHE_KEY",
        "KEYBOARD",
        "MONKEY",
        "HTTP_PROXY",
        "BUILDKIT_INLINE_CACHE",
        "PYTHON_VERSION",
        "OAUTH_CLIENT_ID",
        "_",
    ],
)
def test_ordinary_names(name: str) -> None:
    assert not looks_like_secret(name)


def test_warning_names_the_key_path_and_the_fix(context: Path) -> None:
    config = parse(context, image({"VERSION": "1.0", "NPM_TOKEN": "abc", "DB_PASSWORD": "x"}))
    assert config.warnings == (
        "images[0].build_args.NPM_TOKEN: looks like a secret; a build arg's value is kept in "
        "the image's history (docker history shows it) — declare it under secrets instead: "
        'secrets = { NPM_TOKEN = "env:NPM_TOKEN" }, and read it in the Dockerfile with '
        "RUN --mount=type=secret,id=NPM_TOKEN (the value is in /run/secrets/NPM_TOKEN for "
        "that step only)",
        "images[0].build_args.DB_PASSWORD: looks like a secret; a build arg's value is kept in "
        "the image's history (docker history shows it) — declare it under secrets instead: "
        'secrets = { DB_PASSWORD = "env:DB_PASSWORD" }, and read it in the Dockerfile with '
        "RUN --mount=type=secret,id=DB_PASSWORD (the value is in /run/secrets/DB_PASSWORD for "
        "that step only)",
    )


def test_warnings_for_every_image_in_file_order(context: Path) -> None:
    config = parse(
        context,
        image({"API_KEY": "k"}),
        image({"VERSION": "1"}, name="registry.example.com/team/other"),
        image({"GITHUB_TOKEN": "t"}, name="registry.example.com/team/third"),
    )
    assert [w.split(":", 1)[0] for w in config.warnings] == [
        "images[0].build_args.API_KEY",
        "images[2].build_args.GITHUB_TOKEN",
    ]


def test_no_warnings(context: Path) -> None:
    assert parse(context, image({"VERSION": "1.0", "AUTHOR": "me"})).warnings == ()
    assert parse(context).warnings == ()
    assert Config(None, (), ()).warnings == ()


def test_warning_is_not_a_problem(context: Path) -> None:
    """A secret-looking name is legal: the config loads, the value is kept as written."""
    config = parse(context, image({"NPM_TOKEN": "abc"}))
    assert dict(config.images[0].build_args) == {"NPM_TOKEN": "abc"}


def test_a_broken_name_is_a_problem_not_a_warning(context: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(context, image({"NPM-TOKEN": "abc"}))
    assert [p.path for p in caught.value.problems] == ["images[0].build_args.NPM-TOKEN"]


def test_the_value_never_appears_in_the_warning(context: Path) -> None:
    config = parse(context, image({"NPM_TOKEN": "npm_s3cr3tvalue"}))
    assert config.warnings and all("s3cr3t" not in w for w in config.warnings)
