"""The loaded configuration as values (hosts, images, defaults), the errors a bad config
raises, and the small text helpers its messages share."""

from __future__ import annotations

import difflib
import json
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

from matui.engine.arch import Platform
from matui.engine.refs import Repository, check_tag, parse_repository
from matui.engine.shell import UnsafeValue, check_value

#: Environment variable naming the config file.
CONFIG_ENV = "MATUI_CONFIG"
#: File name looked for in the current directory.
LOCAL_NAME = "matui.toml"

_HOST_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*", re.ASCII)
_USER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\$?", re.ASCII)
# Hostname, IPv4, IPv6 (no brackets, optional %zone) or an alias from ~/.ssh/config. Never starts
# with "-" so it can't be taken for an ssh option.
_ADDRESS_RE = re.compile(r"[A-Za-z0-9_:][A-Za-z0-9_.:%-]*", re.ASCII)
_BUILD_ARG_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
# A BuildKit secret id: it is a word of `--secret id=...` and `--mount=type=secret,id=...` (so no
# comma, = or quote) and a file name on the builder (so no slash, never starting with . or -).
_SECRET_ID_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", re.ASCII)
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
#: Secret sources: ``env:VARIABLE`` (matui's environment) or ``file:PATH`` (a file), both read on
#: the operator's machine when a build starts.
SECRET_KINDS = ("env", "file")
#: Build-arg values reach buildx through its environment (never its command line), so a build
#: arg may not be named like a variable the builder's shell, the docker CLI or buildx read
#: there: it would change how the build runs, not just what it builds.
RESERVED_BUILD_ARGS = frozenset(
    [
        *("PATH", "HOME", "TMPDIR"),
        *("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG", "DOCKER_CERT_PATH"),
        *("DOCKER_TLS", "DOCKER_TLS_VERIFY", "DOCKER_API_VERSION", "DOCKER_DEFAULT_PLATFORM"),
        *("DOCKER_BUILDKIT", "DOCKER_CONTENT_TRUST", "DOCKER_CONTENT_TRUST_SERVER"),
        *("DOCKER_CLI_EXPERIMENTAL", "DOCKER_CUSTOM_HEADERS"),
    ]
)
#: ... and every name starting with one of these (buildx's own settings, the dynamic linker's).
RESERVED_BUILD_ARG_PREFIXES = ("BUILDX_", "LD_")
_LABEL_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*", re.ASCII)
_TARGET_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*", re.ASCII)
_BARE_KEY_RE = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)
# Build-arg names that look like secrets, matched word by word (NPM_TOKEN, dbPassword, API_KEY)
# so that AUTHOR or TOKENIZER_MODE do not trip it.
_NAME_WORD_RE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+", re.ASCII)
_SECRET_ENDINGS = (
    *("password", "passwords", "passwd", "passphrase", "secret", "secrets", "token", "tokens"),
    *("apikey", "privatekey", "credential", "credentials"),
)
_SECRET_WORDS = frozenset([*_SECRET_ENDINGS, "pass", "pwd", "auth", "creds"])
_SECRET_KEY_QUALIFIERS = frozenset(
    ["api", "private", "secret", "access", "ssh", "gpg", "signing", "encryption", "license"]
)
_CAUSE_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,39}", re.ASCII)
"""A failure cause name, as matui's own are (``wrong-arch-binary``)."""
_PORT_RE = re.compile(r"[0-9]{1,5}", re.ASCII)
_MAX_ADDRESS = 255

_ARCH_PLACEHOLDERS = ("tag", "arch")
IMAGE_PLACEHOLDER = "{image}"
"""In an image's context, dockerfile, build-arg and label values: the image's own name, the
last part of its repository (``registry/team/api`` → ``api``)."""
DEFAULT_ARCH_TAG = "{tag}-{arch}"
#: Days a finished job's log and outcome stay on its host (``job_retention_days``): long enough
#: for a matui that lost a build over a holiday to reattach and read it.
DEFAULT_JOB_RETENTION_DAYS = 14
MAX_JOB_RETENTION_DAYS = 3650
#: The highest ``max_jobs`` a host may have: a typo (1000) is caught, a big builder fits.
MAX_JOBS = 256
#: Free disk a host must have before a build starts (``min_free_disk``): a build that fills the
#: disk fails late (``no space left on device``) and can take the host's other work with it.
DEFAULT_MIN_FREE_DISK = 2 * 1024**3
_SIZE_RE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", re.ASCII)
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    **{u: 1024**i for i, u in enumerate(("k", "m", "g", "t"), 1)},
    **{f"{u}ib": 1024**i for i, u in enumerate(("k", "m", "g", "t"), 1)},
    **{f"{u}b": 1000**i for i, u in enumerate(("k", "m", "g", "t"), 1)},
}


# --------------------------------------------------------------------------------------------
# Errors


@dataclass(frozen=True)
class Problem:
    """One mistake in a config file: where it is (a key path) and what to do about it."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ConfigError(Exception):
    """One or more :class:`Problem` s; ``str()`` gives one line per problem."""

    def __init__(self, problems: Iterable[Problem], file: Path | None = None) -> None:
        self.problems: list[Problem] = list(problems)
        self.file: Path | None = file
        super().__init__(str(self))

    def __str__(self) -> str:
        lines = [str(problem) for problem in self.problems]
        if self.file is not None:
            return "\n".join([f"{self.file}:", *(f"  {line}" for line in lines)])
        return "\n".join(lines)


class ConfigRewrittenWarning(UserWarning):
    """:func:`add_host` had to rewrite the whole file, so its comments and layout are gone."""


# --------------------------------------------------------------------------------------------
# The configuration


class SshTarget(NamedTuple):
    """``[user@]address[:port]`` split into its parts."""

    user: str | None
    address: str
    port: int | None


def format_ssh_target(user: str | None, address: str, port: int | None) -> str:
    """``user@address:port`` with the parts that are set; IPv6 addresses get brackets."""
    host = f"[{address}]" if ":" in address and port is not None else address
    text = f"{user}@{host}" if user else host
    return f"{text}:{port}" if port is not None else text


@dataclass(frozen=True)
class HostConfig:
    """A builder host reached over SSH."""

    name: str
    arch: str
    address: str
    port: int | None = None
    user: str | None = None
    identity: Path | None = None
    known_hosts: Path | None = None
    jump: str | None = None
    allow_emulation: bool = False
    job_retention_days: int = DEFAULT_JOB_RETENTION_DAYS
    """Days a finished job's directory (log, outcome) stays on the host; the context copy goes
    when the build ends."""
    min_free_disk: int = DEFAULT_MIN_FREE_DISK
    """Bytes of free disk (where the host's docker keeps its data) below which a build is
    refused; 0: no floor."""
    max_jobs: int | None = None
    """matui jobs the host may run at once (any run's, counted by its probe); None: no cap."""
    builder: str | None = None
    """An existing buildx builder on the host to build through (``docker buildx inspect``
    says its driver and nodes); None: the engine's own."""

    def label(self) -> str:
        """``name (user@address:port)``, for messages."""
        return f"{self.name} ({format_ssh_target(self.user, self.address, self.port)})"


def _empty_mapping() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True)
class SecretSource:
    """Where a BuildKit secret's value is read on the operator's machine when a build starts:
    an environment variable of matui's, or a file. Only the source is configured; the value
    itself is never part of the config."""

    kind: str
    """``env`` or ``file``."""
    variable: str | None = None
    """The environment variable (``env``)."""
    path: Path | None = None
    """The file, resolved against the config file's directory (``file``)."""

    def __str__(self) -> str:
        return f"env:{self.variable}" if self.kind == "env" else f"file:{self.path}"


def _empty_secrets() -> Mapping[str, SecretSource]:
    return MappingProxyType({})


@dataclass(frozen=True)
class ImageConfig:
    """An image to build for several platforms and push as a multi-arch index."""

    name: str
    tags: tuple[str, ...]
    context: Path
    platforms: tuple[Platform, ...]
    dockerfile: str = "Dockerfile"
    build_args: Mapping[str, str] = field(default_factory=_empty_mapping)
    arch_tag: str = DEFAULT_ARCH_TAG
    target: str | None = None
    labels: Mapping[str, str] = field(default_factory=_empty_mapping)
    retired_platforms: tuple[Platform, ...] = ()
    secrets: Mapping[str, SecretSource] = field(default_factory=_empty_secrets)
    """BuildKit secrets by id (``--secret id=ID``, read in the Dockerfile with
    ``RUN --mount=type=secret,id=ID``): their sources, never their values."""
    cache: str | None = None
    """A repository for a registry build cache per arch (``REPO:{image}-{arch}``); only a
    builder whose driver exports caches can honour it."""
    attestations: tuple[str, ...] = ()
    """``provenance`` and/or ``sbom``; only a builder whose driver keeps them can honour it."""

    def repository(self) -> Repository:
        return parse_repository(self.name)

    def arch_tag_for(self, tag: str, platform: Platform) -> str:
        """The tag a single-platform build is pushed to, e.g. ``1.0-arm64``."""
        return check_tag(self.arch_tag.format_map({"tag": tag, "arch": platform.tag_arch}))


@dataclass(frozen=True)
class FailureSignature:
    """A failure cause of the user's own: when ``pattern`` (a regular expression, searched in
    each line of the failing step's output and in its error) matches, a failed job's cause is
    ``cause`` with ``advice``; ``retry`` says whether a plain retry is worth it. Checked before
    matui's own causes, so a team can name what it knows better."""

    pattern: str
    cause: str
    advice: str
    retry: bool = False


@dataclass(frozen=True)
class Config:
    path: Path | None
    hosts: tuple[HostConfig, ...]
    images: tuple[ImageConfig, ...]
    warnings: tuple[str, ...] = ()
    """Not mistakes, but worth telling the user (``images[0].build_args.NPM_TOKEN: ...``)."""
    failure_signatures: tuple[FailureSignature, ...] = ()
    """``[[failure_signatures]]``, in file order (the first that matches wins)."""

    def _where(self) -> str:
        return f" in {self.path}" if self.path is not None else ""

    def host(self, name: str) -> HostConfig:
        for host in self.hosts:
            if host.name == name:
                return host
        names = [host.name for host in self.hosts]
        if not names:
            message = (
                f"no host named {_q(name)}: no hosts are configured{self._where()}; "
                "add one with `matui host add`"
            )
        else:
            message = (
                f"no host named {_q(name)}{_did_you_mean(name, names)}; configured hosts: "
                f"{', '.join(names)}; add it with `matui host add`"
            )
        raise ConfigError([Problem("hosts", message)], self.path)

    def image(self, name: str | None) -> ImageConfig:
        """The image called ``name``; ``None`` means the only one.

        Besides the full repository name, a unique repository path (``team/app``) or last path
        component (``app``) is accepted.
        """
        names = [image.name for image in self.images]
        if not self.images:
            message = (
                f"no images are configured{self._where()}; add an [[images]] section "
                "(see config.example.toml)"
            )
            raise ConfigError([Problem("images", message)], self.path)
        if name is None:
            if len(self.images) == 1:
                return self.images[0]
            message = f"{len(names)} images are configured; choose one of: {', '.join(names)}"
            raise ConfigError([Problem("images", message)], self.path)
        for image in self.images:
            if image.name == name:
                return image
        partial = [
            image
            for image in self.images
            if (path := image.name.partition("/")[2]) == name or path.endswith(f"/{name}")
        ]
        if len(partial) == 1:
            return partial[0]
        if partial:
            message = (
                f"{_q(name)} matches several images: {', '.join(i.name for i in partial)}; "
                "give the full name"
            )
        else:
            message = (
                f"no image named {_q(name)}{_did_you_mean(name, names)}; "
                f"configured images: {', '.join(names)}"
            )
        raise ConfigError([Problem("images", message)], self.path)


# --------------------------------------------------------------------------------------------
# Small helpers


def _q(value: str) -> str:
    """A value as it would be written in TOML: double quotes, escapes for control characters."""
    return json.dumps(value, ensure_ascii=False)


def _show(value: object) -> str:
    if isinstance(value, str):
        text = _q(value)
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, dict):
        return "a table"
    else:
        text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _got(value: object) -> str:
    """``an integer (22)``: the type of a wrong value, and the value when it is short."""
    if isinstance(value, dict):
        return "a table"
    return f"{_type_name(value)} ({_show(value)})"


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return "a date/time"


def _reword(message: str, value: str) -> str:
    """Swap the Python repr of ``value`` in an engine error message for the TOML spelling."""
    return message.replace(repr(value), _q(value), 1)


def _not_a(path: Path, kind: str) -> str | None:
    """Why ``path`` is not a ``kind`` (``file`` or ``directory``); ``None`` when it is one.

    Never raises: a path the system cannot even look up (a name too long, a loop of symlinks,
    no permission) is a problem to report, not a crash.
    """
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "does not exist"
    except OSError as exc:
        return f"cannot be looked up: {exc.strerror or exc}"
    if stat.S_ISREG(mode) if kind == "file" else stat.S_ISDIR(mode):
        return None
    return f"is not a {kind}"


def _did_you_mean(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"; did you mean {_q(close[0])}?" if close else ""


def _key_path(prefix: str, key: str) -> str:
    part = key if _BARE_KEY_RE.fullmatch(key) else _q(key)
    return f"{prefix}.{part}" if prefix else part


def _control_problem(value: str) -> str | None:
    try:
        check_value(value, "the value")
    except UnsafeValue as exc:
        return _reword(str(exc), value) + "; remove them (escapes such as \\n are not allowed)"
    return None


def looks_like_secret(name: str) -> bool:
    """Whether a build-arg name reads like a credential (``NPM_TOKEN``, ``dbPassword``)."""
    words = [word.lower() for word in _NAME_WORD_RE.findall(name)]
    for index, word in enumerate(words):
        if word in _SECRET_WORDS or word.endswith(_SECRET_ENDINGS):
            return True
        if word == "key" and index and words[index - 1] in _SECRET_KEY_QUALIFIERS:
            return True
    return False


def parse_size(text: str) -> int:
    """``"5GiB"`` as bytes: a number (decimals allowed) and a unit, B, KiB/MiB/GiB/TiB (or K, M,
    G, T: also powers of 1024) or KB/MB/GB/TB (powers of 1000); ``"0"`` is 0. Raises
    :class:`ValueError` saying what is wrong and how to write it."""
    match = _SIZE_RE.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _SIZE_UNITS:
        raise ValueError(
            f'{_q(text)} is not a size; write a number and a unit, e.g. "5GiB", "500MiB", '
            '"10GB" (units: B, KiB, MiB, GiB, TiB, KB, MB, GB, TB), or "0" for no floor'
        )
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def format_size(n: int) -> str:
    """``5.0 GiB``: bytes in the largest binary unit that keeps the number at least 1."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def reserved_build_arg(name: str) -> bool:
    """Whether a build arg of this name would clash with a variable the builder's shell, the
    docker CLI or buildx read from their environment (where matui hands build-arg values)."""
    return name in RESERVED_BUILD_ARGS or name.startswith(RESERVED_BUILD_ARG_PREFIXES)


def parse_ssh_target(text: str) -> SshTarget:
    """Split ``[user@]host[:port]``; IPv6 hosts as ``[::1]:22`` (or bare ``::1`` without a port).

    Raises :class:`ValueError` with a message that names the fix.
    """
    usage = "write [user@]host[:port], e.g. builder@build1.example.com:22 or [2001:db8::1]:22"
    bad = _control_problem(text)
    if bad:
        raise ValueError(bad)
    user_text, at, rest = text.rpartition("@")
    user = user_text if at else None
    port_text: str | None = None
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            raise ValueError(f"{_q(text)} has an unclosed [; {usage}")
        address, tail = rest[1:end], rest[end + 1 :]
        if tail:
            if not tail.startswith(":"):
                raise ValueError(f"{_q(text)} has text after ]; {usage}")
            port_text = tail[1:]
    elif rest.count(":") == 1:
        address, _, port_text = rest.partition(":")
    else:
        address = rest
    if user is not None and not _USER_RE.fullmatch(user):
        raise ValueError(f"{_q(text)}: {_q(user)} is not a valid user name; {usage}")
    if not address or len(address) > _MAX_ADDRESS or not _ADDRESS_RE.fullmatch(address):
        raise ValueError(f"{_q(text)}: {_q(address)} is not a host name or address; {usage}")
    port: int | None = None
    if port_text is not None:
        if not _PORT_RE.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
            raise ValueError(f"{_q(text)}: the port must be a number from 1 to 65535; {usage}")
        port = int(port_text)
    return SshTarget(user, address, port)


# --------------------------------------------------------------------------------------------
