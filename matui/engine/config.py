"""matui's configuration file: builder hosts and the images to build on them.

The file is TOML with three top-level keys (see ``config.example.toml`` for every key)::

    [defaults]            # optional: applied to every [[hosts]] entry that leaves them out
    user = "builder"
    identity = "~/.ssh/id_ed25519"
    known_hosts = "~/.ssh/known_hosts"

    [[hosts]]             # one per builder host
    name = "amd64-1"
    arch = "amd64"
    address = "build1.example.com"

    [[images]]            # one per image to build
    name = "registry.example.com/team/app"
    tags = ["1.0"]
    context = "."
    platforms = ["linux/amd64", "linux/arm64"]

Checking never stops at the first mistake: every mistake becomes one :class:`Problem` naming the
key path (``hosts[1].arch``) and the fix, and they are raised together as one
:class:`ConfigError`. A config with no hosts and no images is valid, so ``matui init`` followed by
``matui host add`` works; commands that need a host or an image say so when they run.

Relative paths (``identity``, ``known_hosts``, ``context``) are resolved against the directory
of the config file, after ``~`` expansion.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import stat
import string
import tempfile
import tomllib
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

import tomli_w

from matui.engine.arch import ARCHES, ArchError, Platform, normalise_arch
from matui.engine.refs import RefError, Repository, check_tag, parse_repository
from matui.engine.remote import UnsafeValue, check_value

__all__ = [
    "CONFIG_ENV",
    "Config",
    "ConfigError",
    "ConfigRewrittenWarning",
    "HostConfig",
    "ImageConfig",
    "Problem",
    "SshTarget",
    "add_host",
    "default_config_path",
    "find_config",
    "format_ssh_target",
    "load_config",
    "looks_like_secret",
    "parse_config",
    "parse_ssh_target",
    "write_starter_config",
]

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
_PORT_RE = re.compile(r"[0-9]{1,5}", re.ASCII)
_MAX_ADDRESS = 255

_ARCH_PLACEHOLDERS = ("tag", "arch")
DEFAULT_ARCH_TAG = "{tag}-{arch}"


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

    def label(self) -> str:
        """``name (user@address:port)``, for messages."""
        return f"{self.name} ({format_ssh_target(self.user, self.address, self.port)})"


def _empty_mapping() -> Mapping[str, str]:
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

    def repository(self) -> Repository:
        return parse_repository(self.name)

    def arch_tag_for(self, tag: str, platform: Platform) -> str:
        """The tag a single-platform build is pushed to, e.g. ``1.0-arm64``."""
        return check_tag(self.arch_tag.format_map({"tag": tag, "arch": platform.tag_arch}))


@dataclass(frozen=True)
class Config:
    path: Path | None
    hosts: tuple[HostConfig, ...]
    images: tuple[ImageConfig, ...]
    warnings: tuple[str, ...] = ()
    """Not mistakes, but worth telling the user (``images[0].build_args.NPM_TOKEN: ...``)."""

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
# Checking


class _Key(NamedTuple):
    kind: type
    example: str
    required: bool = False


_TOP_KEYS: dict[str, _Key] = {
    "defaults": _Key(dict, "[defaults]"),
    "hosts": _Key(list, "[[hosts]]"),
    "images": _Key(list, "[[images]]"),
}
_DEFAULT_KEYS: dict[str, _Key] = {
    "user": _Key(str, 'user = "builder"'),
    "identity": _Key(str, 'identity = "~/.ssh/id_ed25519"'),
    "known_hosts": _Key(str, 'known_hosts = "~/.ssh/known_hosts"'),
}
_HOST_KEYS: dict[str, _Key] = {
    "name": _Key(str, 'name = "arm64-1"', required=True),
    "arch": _Key(str, 'arch = "arm64"', required=True),
    "address": _Key(str, 'address = "build1.example.com"', required=True),
    "port": _Key(int, "port = 22"),
    "user": _Key(str, 'user = "builder"'),
    "identity": _Key(str, 'identity = "~/.ssh/id_ed25519"'),
    "known_hosts": _Key(str, 'known_hosts = "~/.ssh/known_hosts"'),
    "jump": _Key(str, 'jump = "bastion"'),
    "allow_emulation": _Key(bool, "allow_emulation = true"),
}
_IMAGE_KEYS: dict[str, _Key] = {
    "name": _Key(str, 'name = "registry.example.com/team/app"', required=True),
    "tags": _Key(list, 'tags = ["1.0", "latest"]', required=True),
    "context": _Key(str, 'context = "."', required=True),
    "dockerfile": _Key(str, 'dockerfile = "Dockerfile"'),
    "platforms": _Key(list, 'platforms = ["linux/amd64", "linux/arm64"]', required=True),
    "build_args": _Key(dict, 'build_args = { VERSION = "1.0" }'),
    "arch_tag": _Key(str, 'arch_tag = "{tag}-{arch}"'),
    "target": _Key(str, 'target = "runtime"'),
    "labels": _Key(dict, 'labels = { "org.opencontainers.image.source" = "https://..." }'),
    "retired_platforms": _Key(list, 'retired_platforms = ["linux/arm/v6"]'),
}


@dataclass
class _Defaults:
    user: str | None = None
    identity: Path | None = None
    known_hosts: Path | None = None


class _Checker:
    """Walks the parsed TOML, collecting one :class:`Problem` per mistake."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.problems: list[Problem] = []
        self.warnings: list[str] = []
        self.names_complete = True

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    # -- generic access ------------------------------------------------------------------------

    def keys(self, table: Mapping[str, object], prefix: str, known: Mapping[str, _Key]) -> None:
        for key in table:
            if key in known:
                continue
            hint = _did_you_mean(key, known)
            if not hint:
                hint = f"; valid keys here: {', '.join(known)}"
            self.add(_key_path(prefix, key), f"unknown key {_q(key)}{hint}")

    def get(
        self, table: Mapping[str, object], key: str, prefix: str, spec: _Key, where: str
    ) -> object | None:
        """The value under ``key`` if present and of the right type, else ``None``."""
        path = _key_path(prefix, key)
        if key not in table:
            if spec.required:
                self.add(path, f"missing; add {spec.example} to {where}")
            return None
        value = table[key]
        if spec.kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if spec.kind is not int and isinstance(value, spec.kind):
            if isinstance(value, str) and (bad := _control_problem(value)):
                self.add(path, bad)
                return None
            return value
        expected = {
            str: "a string",
            int: "an integer",
            bool: "a boolean (true or false)",
            list: "an array",
            dict: "a table",
        }[spec.kind]
        self.add(
            path,
            f"expected {expected}, got {_got(value)}; write it as {spec.example}",
        )
        return None

    def string(
        self, table: Mapping[str, object], key: str, prefix: str, spec: _Key, where: str
    ) -> str | None:
        value = self.get(table, key, prefix, spec, where)
        return value if isinstance(value, str) else None

    def string_list(
        self, table: Mapping[str, object], key: str, prefix: str, spec: _Key, where: str
    ) -> list[tuple[str, str]] | None:
        """``(path, item)`` for each string item; bad items are reported and left out."""
        value = self.get(table, key, prefix, spec, where)
        if not isinstance(value, list):
            return None
        items: list[tuple[str, str]] = []
        base = _key_path(prefix, key)
        for index, item in enumerate(value):
            path = f"{base}[{index}]"
            if not isinstance(item, str):
                self.add(
                    path,
                    f"expected a string, got {_got(item)}; write it as {spec.example}",
                )
            elif bad := _control_problem(item):
                self.add(path, bad)
            else:
                items.append((path, item))
        return items

    def string_table(
        self,
        table: Mapping[str, object],
        key: str,
        prefix: str,
        spec: _Key,
        where: str,
        key_re: re.Pattern[str],
        key_rule: str,
    ) -> dict[str, str]:
        value = self.get(table, key, prefix, spec, where)
        result: dict[str, str] = {}
        if not isinstance(value, dict):
            return result
        base = _key_path(prefix, key)
        for name, item in value.items():
            path = _key_path(base, name)
            if bad := _control_problem(name):
                self.add(path, f"the key {bad}")
            elif not key_re.fullmatch(name):
                self.add(path, f"{_q(name)} is not a valid name; {key_rule}")
            elif isinstance(item, dict):
                dotted = [name]
                while isinstance(item, dict) and len(item) == 1:
                    inner, item = next(iter(item.items()))
                    dotted.append(inner)
                self.add(
                    path,
                    f"expected a string, got a table; TOML reads unquoted dots as nesting, so "
                    f'quote names that hold dots: {_q(".".join(dotted))} = "..."',
                )
            elif not isinstance(item, str):
                self.add(
                    path,
                    f"expected a string, got {_got(item)}; "
                    f'quote it: {name} = "{_show(item).strip(chr(34))}"',
                )
            elif bad := _control_problem(item):
                self.add(path, bad)
            else:
                result[name] = item
        return result

    def file_path(self, text: str, path: str, what: str, fix: str) -> Path | None:
        """Resolve a path to a file that must exist; ``fix`` completes the message."""
        resolved = self.resolve(text, path)
        if resolved is None:
            return None
        if state := _not_a(resolved, "file"):
            self.add(path, f"{what} {resolved} {state}; {fix.format(path=resolved)}")
            return None
        return resolved

    def resolve(self, text: str, path: str) -> Path | None:
        if not text:
            self.add(path, "is empty; give a path, or leave the key out")
            return None
        try:
            expanded = Path(text).expanduser()
        except RuntimeError as exc:
            self.add(path, f"cannot expand {_q(text)} ({exc}); write the path in full")
            return None
        return Path(os.path.normpath(self.base_dir / expanded))

    # -- top level -----------------------------------------------------------------------------

    def document(self, data: Mapping[str, object]) -> tuple[list[HostConfig], list[ImageConfig]]:
        self.keys(data, "", _TOP_KEYS)
        defaults = _Defaults()
        raw_defaults = self.get(data, "defaults", "", _TOP_KEYS["defaults"], "the file")
        if isinstance(raw_defaults, dict):
            defaults = self.defaults(raw_defaults)
        hosts = self.hosts(data, defaults)
        images = self.images(data)
        return hosts, images

    def entries(self, data: Mapping[str, object], key: str) -> list[tuple[str, dict[str, object]]]:
        """The tables of an array of tables, with their paths."""
        if key not in data:
            return []
        value = data[key]
        if isinstance(value, dict):
            self.add(
                key,
                f"expected an array of tables, got a table; write each entry as a [[{key}]] "
                f"section (double brackets), not [{key}]",
            )
            return []
        if not isinstance(value, list):
            self.add(
                key,
                f"expected an array of tables, got {_got(value)}; "
                f"write each entry as a [[{key}]] section",
            )
            return []
        result: list[tuple[str, dict[str, object]]] = []
        for index, item in enumerate(value):
            path = f"{key}[{index}]"
            if isinstance(item, dict):
                result.append((path, item))
            else:
                self.add(
                    path,
                    f"expected a table, got {_got(item)}; "
                    f"write each entry as a [[{key}]] section with keys",
                )
        return result

    def defaults(self, table: Mapping[str, object]) -> _Defaults:
        self.keys(table, "defaults", _DEFAULT_KEYS)
        result = _Defaults()
        where = "[defaults]"
        user = self.string(table, "user", "defaults", _DEFAULT_KEYS["user"], where)
        if user is not None and self.user(user, "defaults.user"):
            result.user = user
        identity = self.string(table, "identity", "defaults", _DEFAULT_KEYS["identity"], where)
        if identity is not None:
            result.identity = self.identity(identity, "defaults.identity")
        known = self.string(table, "known_hosts", "defaults", _DEFAULT_KEYS["known_hosts"], where)
        if known is not None:
            result.known_hosts = self.known_hosts(known, "defaults.known_hosts")
        return result

    # -- hosts ---------------------------------------------------------------------------------

    def user(self, user: str, path: str) -> bool:
        if _USER_RE.fullmatch(user):
            return True
        self.add(
            path,
            f"{_q(user)} is not a user name; use letters, digits, _ . - "
            '(not starting with . or -), e.g. user = "builder"',
        )
        return False

    def identity(self, text: str, path: str) -> Path | None:
        return self.file_path(
            text,
            path,
            "identity file",
            "fix the path, or create a key with `ssh-keygen -t ed25519 -f {path}`",
        )

    def known_hosts(self, text: str, path: str, scan: str = "ssh-keyscan HOST") -> Path | None:
        return self.file_path(
            text,
            path,
            "known_hosts file",
            f"fix the path, or create it: `{scan} >> {{path}}` (check the keys it prints)",
        )

    def address(self, text: str, path: str) -> str | None:
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        if "@" in text:
            user, _, rest = text.rpartition("@")
            self.add(
                path,
                f"{_q(text)} includes a user; write user = {_q(user)} and address = {_q(rest)}",
            )
            return None
        if text.count(":") == 1 and text.partition(":")[2].isdigit():
            host, _, port = text.partition(":")
            self.add(
                path,
                f"{_q(text)} includes a port; write port = {port} and address = {_q(host)}",
            )
            return None
        if not text or len(text) > _MAX_ADDRESS or not _ADDRESS_RE.fullmatch(text):
            self.add(
                path,
                f"{_q(text)} is not a host name, IP address or ~/.ssh/config alias; "
                'write e.g. address = "build1.example.com" or "192.0.2.10"',
            )
            return None
        return text

    def hosts(self, data: Mapping[str, object], defaults: _Defaults) -> list[HostConfig]:
        entries = self.entries(data, "hosts")
        all_names = {
            name
            for _, entry in entries
            if isinstance(name := entry.get("name"), str) and _HOST_NAME_RE.fullmatch(name)
        }
        # A jump may name a host whose own name is broken; that mistake is reported once, there.
        self.names_complete = len(all_names) == len(entries)
        hosts: list[HostConfig] = []
        jumps: dict[str, tuple[str, str]] = {}  # host name -> (path, jumped-to host name)
        seen: dict[str, str] = {}
        for path, entry in entries:
            host = self.host(path, entry, defaults, all_names, jumps, seen)
            if host is not None:
                hosts.append(host)
        self.jump_cycles(jumps)
        return hosts

    def host(
        self,
        prefix: str,
        entry: Mapping[str, object],
        defaults: _Defaults,
        all_names: set[str],
        jumps: dict[str, tuple[str, str]],
        seen: dict[str, str],
    ) -> HostConfig | None:
        self.keys(entry, prefix, _HOST_KEYS)
        count = len(self.problems)
        raw_name = entry.get("name")
        where = (
            f"the [[hosts]] entry named {_q(raw_name)}"
            if isinstance(raw_name, str)
            else f"this [[hosts]] entry ({prefix})"
        )

        def take(key: str) -> object | None:
            return self.get(entry, key, prefix, _HOST_KEYS[key], where)

        name = take("name")
        if isinstance(name, str):
            if not _HOST_NAME_RE.fullmatch(name):
                self.add(
                    f"{prefix}.name",
                    f"{_q(name)} is not a valid host name; use letters, digits, _ . - "
                    '(starting with a letter or digit), e.g. name = "arm64-1"',
                )
                name = None
            elif name in seen:
                self.add(
                    f"{prefix}.name",
                    f"{_q(name)} is already the name of {seen[name]}; host names must be unique, "
                    "rename one of them",
                )
                name = None
            else:
                seen[name] = prefix
        arch = take("arch")
        canonical: str | None = None
        if isinstance(arch, str):
            try:
                canonical = normalise_arch(arch)
            except ArchError:
                self.add(
                    f"{prefix}.arch",
                    f"{_q(arch)} is not an architecture; use one of {', '.join(ARCHES)}",
                )
        address = take("address")
        if isinstance(address, str):
            address = self.address(address, f"{prefix}.address")
        port = take("port")
        if isinstance(port, int) and not 1 <= port <= 65535:
            self.add(
                f"{prefix}.port",
                f"{port} is not a TCP port; use a number from 1 to 65535, or leave port out "
                "to use ~/.ssh/config or 22",
            )
            port = None
        user = take("user")
        if isinstance(user, str) and not self.user(user, f"{prefix}.user"):
            user = None
        identity: Path | None = defaults.identity
        if isinstance(identity_text := take("identity"), str):
            identity = self.identity(identity_text, f"{prefix}.identity")
        known_hosts: Path | None = defaults.known_hosts
        if isinstance(known_text := take("known_hosts"), str):
            scan_port = f"-p {port} " if isinstance(port, int) else ""
            scan_host = address if isinstance(address, str) else "HOST"
            known_hosts = self.known_hosts(
                known_text, f"{prefix}.known_hosts", f"ssh-keyscan {scan_port}{scan_host}"
            )
        jump = take("jump")
        if isinstance(jump, str) and isinstance(raw_name, str):
            self.jump(f"{prefix}.jump", raw_name, jump, all_names, jumps)
        emulation = take("allow_emulation")
        if len(self.problems) > count:
            return None
        assert isinstance(name, str) and isinstance(address, str) and canonical is not None
        return HostConfig(
            name=name,
            arch=canonical,
            address=address,
            port=port if isinstance(port, int) else None,
            user=user if isinstance(user, str) else defaults.user,
            identity=identity,
            known_hosts=known_hosts,
            jump=jump if isinstance(jump, str) else None,
            allow_emulation=emulation is True,
        )

    def jump(
        self,
        path: str,
        name: str,
        jump: str,
        all_names: set[str],
        jumps: dict[str, tuple[str, str]],
    ) -> None:
        if jump == name:
            self.add(
                path,
                f"{_q(name)} jumps through itself; remove jump, or name another host "
                "(or user@host[:port])",
            )
        elif jump in all_names:
            jumps.setdefault(name, (path, jump))
        elif any(ch in jump for ch in "@:.[]"):
            try:
                parse_ssh_target(jump)
            except ValueError as exc:
                self.add(path, str(exc))
        elif self.names_complete:
            names = sorted(n for n in all_names if n != name)
            self.add(
                path,
                f"{_q(jump)} is not a host in this file{_did_you_mean(jump, names)}; name a "
                "[[hosts]] entry, or write user@host[:port] for a jump host that is not a builder",
            )

    def jump_cycles(self, jumps: Mapping[str, tuple[str, str]]) -> None:
        reported: set[str] = set()
        for start in jumps:
            chain = [start]
            current = start
            while current in jumps:
                current = jumps[current][1]
                if current in chain:
                    cycle = chain[chain.index(current) :]
                    if not reported.intersection(cycle):
                        reported.update(cycle)
                        first = cycle[0]
                        loop = " → ".join([*cycle, first])
                        self.add(
                            jumps[first][0],
                            f"jump hosts form a cycle ({loop}); remove jump from one of them",
                        )
                    break
                chain.append(current)

    # -- images --------------------------------------------------------------------------------

    def images(self, data: Mapping[str, object]) -> list[ImageConfig]:
        images: list[ImageConfig] = []
        seen: dict[str, str] = {}
        for path, entry in self.entries(data, "images"):
            image = self.image(path, entry, seen)
            if image is not None:
                images.append(image)
        return images

    def platform_list(self, items: list[tuple[str, str]], what: str) -> list[tuple[str, Platform]]:
        result: list[tuple[str, Platform]] = []
        first: dict[Platform, tuple[str, str]] = {}
        for path, text in items:
            try:
                platform = Platform.parse(text)
            except ArchError as exc:
                message = _reword(_reword(str(exc), text), text.partition("/")[2])
                if _q(text) not in message:
                    message = f"{_q(text)}: {message}"
                self.add(path, message)
                continue
            if platform in first:
                earlier_path, earlier = first[platform]
                self.add(
                    path,
                    f"{_q(text)} is the same platform as {earlier_path} ({_q(earlier)}); "
                    f"remove one from {what}",
                )
                continue
            first[platform] = (path, text)
            result.append((path, platform))
        return result

    def image(
        self, prefix: str, entry: Mapping[str, object], seen: dict[str, str]
    ) -> ImageConfig | None:
        self.keys(entry, prefix, _IMAGE_KEYS)
        count = len(self.problems)
        raw_name = entry.get("name")
        where = (
            f"the [[images]] entry named {_q(raw_name)}"
            if isinstance(raw_name, str)
            else f"this [[images]] entry ({prefix})"
        )

        def spec(key: str) -> _Key:
            return _IMAGE_KEYS[key]

        name = self.string(entry, "name", prefix, spec("name"), where)
        if name is not None:
            try:
                parse_repository(name)
            except RefError as exc:
                self.add(f"{prefix}.name", _reword(str(exc), name))
            else:
                if name in seen:
                    self.add(
                        f"{prefix}.name",
                        f"{_q(name)} is already configured at {seen[name]}; image names must be "
                        "unique, merge the two entries (list every tag under tags)",
                    )
                else:
                    seen[name] = prefix

        tags: list[str] = []
        raw_tags = self.string_list(entry, "tags", prefix, spec("tags"), where)
        if raw_tags is not None:
            if entry.get("tags") == []:
                self.add(f"{prefix}.tags", 'is empty; list at least one tag, e.g. tags = ["1.0"]')
            first_tag: dict[str, str] = {}
            for path, tag in raw_tags:
                try:
                    check_tag(tag)
                except RefError as exc:
                    self.add(path, _reword(str(exc), tag))
                    continue
                if tag in first_tag:
                    self.add(path, f"{_q(tag)} is already listed at {first_tag[tag]}; remove it")
                    continue
                first_tag[tag] = path
                tags.append(tag)

        context: Path | None = None
        context_text = self.string(entry, "context", prefix, spec("context"), where)
        if context_text is not None:
            context = self.resolve(context_text, f"{prefix}.context")
            if context is not None and (state := _not_a(context, "directory")):
                self.add(
                    f"{prefix}.context",
                    f"build context {context} {state}; give the directory that holds the "
                    "Dockerfile (relative paths start at the config file's directory)",
                )
                context = None

        dockerfile = "Dockerfile"
        dockerfile_text = self.string(entry, "dockerfile", prefix, spec("dockerfile"), where)
        if dockerfile_text is not None:
            dockerfile = dockerfile_text
            self.dockerfile(f"{prefix}.dockerfile", dockerfile, context)
        elif "dockerfile" not in entry and context is not None:
            self.dockerfile(f"{prefix}.dockerfile", dockerfile, context)

        raw_platforms = self.string_list(entry, "platforms", prefix, spec("platforms"), where)
        platforms: list[Platform] = []
        if raw_platforms is not None:
            if entry.get("platforms") == []:
                self.add(
                    f"{prefix}.platforms",
                    'is empty; list at least one, e.g. platforms = ["linux/amd64", "linux/arm64"]',
                )
            platforms = [p for _, p in self.platform_list(raw_platforms, "platforms")]

        raw_retired = self.string_list(
            entry, "retired_platforms", prefix, spec("retired_platforms"), where
        )
        retired: list[Platform] = []
        for path, platform in self.platform_list(raw_retired or [], "retired_platforms"):
            if platform in platforms:
                self.add(
                    path,
                    f"{platform} is also in platforms; a platform is either built or retired, "
                    "remove it from one of the two lists",
                )
            else:
                retired.append(platform)

        build_args = self.string_table(
            entry,
            "build_args",
            prefix,
            spec("build_args"),
            where,
            _BUILD_ARG_RE,
            "build argument names are letters, digits and _, not starting with a digit",
        )
        for arg in build_args:
            if looks_like_secret(arg):
                self.warnings.append(
                    f"{_key_path(_key_path(prefix, 'build_args'), arg)}: looks like a secret; "
                    "build args end up in the image history and on the builder's command line — "
                    f"pass it with a BuildKit secret (--secret id={arg},env={arg}, read with "
                    f"RUN --mount=type=secret,id={arg}) instead"
                )
        labels = self.string_table(
            entry,
            "labels",
            prefix,
            spec("labels"),
            where,
            _LABEL_KEY_RE,
            "label keys are letters, digits and . _ / - "
            "(e.g. org.opencontainers.image.source), quoted in TOML when they hold dots",
        )

        arch_tag = DEFAULT_ARCH_TAG
        arch_tag_text = self.string(entry, "arch_tag", prefix, spec("arch_tag"), where)
        if arch_tag_text is not None:
            arch_tag = arch_tag_text
        if "arch_tag" not in entry or arch_tag_text is not None:
            self.arch_tag(f"{prefix}.arch_tag", arch_tag, tags, platforms)

        target = self.string(entry, "target", prefix, spec("target"), where)
        if target is not None and not _TARGET_RE.fullmatch(target):
            self.add(
                f"{prefix}.target",
                f"{_q(target)} is not a stage name; give the name after AS in a FROM line, "
                'e.g. target = "runtime"',
            )

        if len(self.problems) > count:
            return None
        assert name is not None and context is not None
        return ImageConfig(
            name=name,
            tags=tuple(tags),
            context=context,
            platforms=tuple(platforms),
            dockerfile=dockerfile,
            build_args=MappingProxyType(build_args),
            arch_tag=arch_tag,
            target=target,
            labels=MappingProxyType(labels),
            retired_platforms=tuple(retired),
        )

    def dockerfile(self, path: str, dockerfile: str, context: Path | None) -> None:
        relative = Path(dockerfile)
        if not dockerfile or relative.is_absolute() or dockerfile.startswith("~"):
            self.add(
                path,
                f"{_q(dockerfile)} must be a path relative to the build context, "
                'e.g. dockerfile = "Dockerfile" or "docker/Dockerfile.prod"',
            )
            return
        if context is None:
            return  # the context problem is already reported
        try:
            full = (context / relative).resolve()
        except (OSError, RuntimeError) as exc:  # RuntimeError: a loop of symlinks
            self.add(
                path,
                f"{_q(dockerfile)} cannot be looked up in the build context ({exc}); fix "
                "dockerfile (relative to context) or the links it goes through",
            )
            return
        if not full.is_relative_to(context.resolve()):
            self.add(
                path,
                f"{_q(dockerfile)} is outside the build context {context}; move the Dockerfile "
                "into the context, or widen context",
            )
        elif state := _not_a(full, "file"):
            why = "" if state in ("does not exist", "is not a file") else f" ({state})"
            self.add(
                path,
                f"there is no Dockerfile at {context / relative}{why}; fix dockerfile "
                "(relative to context) or context",
            )

    def arch_tag(
        self,
        path: str,
        arch_tag: str,
        tags: list[str],
        platforms: list[Platform],
    ) -> None:
        example = f'e.g. arch_tag = "{DEFAULT_ARCH_TAG}"'
        try:
            parts = list(string.Formatter().parse(arch_tag))
        except ValueError:
            self.add(
                path,
                f"{_q(arch_tag)} has unbalanced braces; write placeholders as {{tag}} and "
                f"{{arch}}, {example}",
            )
            return
        unknown: list[str] = []
        used: set[str] = set()
        for _, field_name, spec, conversion in parts:
            if field_name is None:
                continue
            if field_name not in _ARCH_PLACEHOLDERS or spec or conversion:
                text = field_name + (f"!{conversion}" if conversion else "")
                text += f":{spec}" if spec else ""
                unknown.append(f"{{{text}}}")
            else:
                used.add(field_name)
        if unknown:
            self.add(
                path,
                f"{_q(arch_tag)} uses unknown placeholder {', '.join(unknown)}; only {{tag}} "
                f"and {{arch}} are allowed, {example}",
            )
            return
        if "arch" not in used and len(platforms) >= 2:
            self.add(
                path,
                f"{_q(arch_tag)} has no {{arch}}, so the {len(platforms)} platform builds would "
                f"overwrite each other's tag (tag-overwrite); add {{arch}}, {example}",
            )
            return
        made: dict[str, tuple[str, Platform]] = {}
        for tag in tags:
            for platform in platforms:
                result = arch_tag.format_map({"tag": tag, "arch": platform.tag_arch})
                try:
                    check_tag(result)
                except RefError:
                    self.add(
                        path,
                        f"{_q(arch_tag)} gives {_q(result)} for tag {_q(tag)} on {platform}, "
                        f"which is not a valid tag (1-128 characters of A-Z a-z 0-9 _ . -, "
                        f"not starting with . or -); change arch_tag, {example}",
                    )
                    return
                if result in tags:
                    self.add(
                        path,
                        f"{_q(arch_tag)} gives {_q(result)} for the {platform} build, which is "
                        f"also a release tag: the single-arch push would overwrite it "
                        f"(tag-overwrite); change arch_tag or tags, {example}",
                    )
                    return
                other = made.get(result)
                if other is not None and other[1] != platform:
                    self.add(
                        path,
                        f"{_q(arch_tag)} gives {_q(result)} for both {other[1]} and {platform} "
                        f"(tag-overwrite); change arch_tag, {example}",
                    )
                    return
                made[result] = (tag, platform)


# --------------------------------------------------------------------------------------------
# Reading


def _syntax_problem(exc: tomllib.TOMLDecodeError) -> Problem:
    return Problem(
        "syntax",
        f"{exc}; fix the TOML there (strings need double quotes, tables [name], "
        "arrays of tables [[name]])",
    )


def parse_config(text: str, path: Path | None, base_dir: Path) -> Config:
    """Check a config document; relative paths in it are resolved against ``base_dir``.

    Raises :class:`ConfigError` carrying every problem found.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([_syntax_problem(exc)], path) from None
    checker = _Checker(base_dir.absolute())
    hosts, images = checker.document(data)
    if checker.problems:
        raise ConfigError(checker.problems, path)
    return Config(path, tuple(hosts), tuple(images), tuple(checker.warnings))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        message = (
            f"{path} does not exist; run `matui init` to write a starter config, "
            "or pass --config PATH"
        )
    except IsADirectoryError:
        message = f"{path} is a directory; give the path of the config file itself"
    except UnicodeDecodeError as exc:
        message = f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8"
    except OSError as exc:
        message = f"cannot read {path}: {exc.strerror or exc}; check its permissions"
    raise ConfigError([Problem("config", message)], path)


def load_config(path: Path) -> Config:
    """Read and check the config file at ``path``."""
    path = path.expanduser().absolute()
    return parse_config(_read(path), path, path.parent)


def default_config_path(env: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_CONFIG_HOME/matui/config.toml`` (``~/.config`` when unset): where init writes."""
    xdg = env.get("XDG_CONFIG_HOME", "")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "matui" / "config.toml"
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    return home / ".config" / "matui" / "config.toml"


def find_config(
    explicit: Path | None, env: Mapping[str, str] = os.environ, cwd: Path | None = None
) -> Path:
    """The config file to use: ``--config PATH``, ``$MATUI_CONFIG``, ``./matui.toml``, then
    ``$XDG_CONFIG_HOME/matui/config.toml``. The first two must exist when given."""
    base = cwd if cwd is not None else Path.cwd()

    def full(text: str | Path) -> Path:
        candidate = Path(text)
        if str(candidate).startswith("~"):
            home = env.get("HOME")
            candidate = Path(home, *candidate.parts[1:]) if home else candidate.expanduser()
        return base / candidate

    if explicit is not None:
        path = full(explicit)
        if path.is_file():
            return path
        state = "is not a file" if path.exists() else "does not exist"
        raise ConfigError(
            [
                Problem(
                    "--config",
                    f"{path} {state}; fix the path, or run `matui init` to write a config there",
                )
            ]
        )
    from_env = env.get(CONFIG_ENV, "")
    if from_env:
        path = full(from_env)
        if path.is_file():
            return path
        state = "is not a file" if path.exists() else "does not exist"
        raise ConfigError(
            [
                Problem(
                    f"${CONFIG_ENV}",
                    f"points to {path}, which {state}; fix or unset {CONFIG_ENV}, or run "
                    "`matui init` to write a config there",
                )
            ]
        )
    local = base / LOCAL_NAME
    if local.is_file():
        return local
    user = default_config_path(env)
    if user.is_file():
        return user
    message = (
        f"no config file found; looked at --config (not given), ${CONFIG_ENV} (not set), "
        f"{local} (./{LOCAL_NAME}) and {user} ($XDG_CONFIG_HOME/matui/config.toml); "
        "run `matui init` to write one, or pass --config PATH"
    )
    raise ConfigError([Problem("config", message)])


# --------------------------------------------------------------------------------------------
# Writing

STARTER = """\
# matui configuration. Every key is described in config.example.toml in the matui sources.
#
# Add builder hosts with `matui host add`, or by hand:
#
# [defaults]                          # optional, applied to hosts that leave these out
# user = "builder"
# identity = "~/.ssh/id_ed25519"
# known_hosts = "~/.ssh/known_hosts"
#
# [[hosts]]
# name = "amd64-1"                    # unique name used in messages and on the command line
# arch = "amd64"                      # amd64, arm64, arm/v7, arm/v6, 386, ppc64le, s390x, riscv64
# address = "build1.example.com"      # host name, IP, or an alias from ~/.ssh/config
#
# [[images]]
# name = "registry.example.com/team/app"   # full repository, registry host included
# tags = ["1.0"]
# context = "."                            # relative to this file's directory
# platforms = ["linux/amd64", "linux/arm64"]
"""


def _atomic_write(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step, keeping its permission bits."""
    target = path.resolve()  # write through a symlink instead of replacing it
    try:
        mode: int | None = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = None
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_starter_config(path: Path) -> None:
    """Write a small, valid, commented config at ``path``; never overwrites."""
    if path.exists() or path.is_symlink():
        raise ConfigError(
            [
                Problem(
                    "config",
                    f"{path} already exists; edit it, add hosts with `matui host add`, or remove "
                    "it first to start over",
                )
            ],
            path,
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8") as handle:
            handle.write(STARTER)
    except FileExistsError:
        raise ConfigError(
            [Problem("config", f"{path} already exists; edit it or remove it first")], path
        ) from None
    except OSError as exc:
        raise ConfigError(
            [Problem("config", f"cannot write {path}: {exc.strerror or exc}; check permissions")],
            path,
        ) from None


def _entry_path(value: Path) -> str:
    text = str(value)
    if text.startswith("~") or value.is_absolute():
        return text
    return str(value.absolute())


def _problems(text: str, path: Path) -> list[Problem]:
    try:
        parse_config(text, path, path.parent)
    except ConfigError as exc:
        return exc.problems
    return []


def add_host(
    path: Path,
    *,
    name: str,
    arch: str,
    ssh: str,
    identity: Path | None = None,
    known_hosts: Path | None = None,
    jump: str | None = None,
    allow_emulation: bool = False,
    port: int | None = None,
) -> HostConfig:
    """Append a ``[[hosts]]`` entry to the config at ``path`` and return the checked host.

    ``ssh`` is ``[user@]host[:port]`` (``[::1]:22`` for IPv6); ``port`` overrides a port in it.
    Relative ``identity``/``known_hosts`` paths are taken from the current directory and written
    absolute. The new text is appended so comments and layout stay; when the file cannot take an
    appended ``[[hosts]]`` section (``hosts`` written as an inline array), the whole file is
    rewritten from its data and a :class:`ConfigRewrittenWarning` is issued, since comments are
    lost. Nothing is written when the new entry has a problem; problems already in the file are
    left alone.
    """
    path = path.expanduser().absolute()
    original = _read(path)
    try:
        data = tomllib.loads(original)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([_syntax_problem(exc)], path) from None
    try:
        target = parse_ssh_target(ssh)
    except ValueError as exc:
        raise ConfigError([Problem("ssh", str(exc))], path) from None

    entry: dict[str, object] = {"name": name}
    try:
        entry["arch"] = normalise_arch(arch)
    except ArchError:
        entry["arch"] = arch  # reported by the check below, with the right key path
    entry["address"] = target.address
    if target.user is not None:
        entry["user"] = target.user
    chosen_port = port if port is not None else target.port
    if chosen_port is not None:
        entry["port"] = chosen_port
    if identity is not None:
        entry["identity"] = _entry_path(identity)
    if known_hosts is not None:
        entry["known_hosts"] = _entry_path(known_hosts)
    if jump is not None:
        entry["jump"] = jump
    if allow_emulation:
        entry["allow_emulation"] = True

    before = set(_problems(original, path))
    appended = original
    if appended and not appended.endswith("\n"):
        appended += "\n"
    if appended.strip():
        appended += "\n"
    # tomli_w renders a short array of tables inline (hosts = [{...}]), which could not follow
    # an existing [[hosts]] section; the entry holds scalars only, so write the header by hand.
    appended += "[[hosts]]\n" + tomli_w.dumps(entry)
    rewritten = False
    try:
        tomllib.loads(appended)
        new_text = appended
    except tomllib.TOMLDecodeError:
        hosts = data.get("hosts")
        if not isinstance(hosts, list):
            raise ConfigError(
                [Problem("hosts", "is not an array of tables; fix it before adding hosts")],
                path,
            ) from None
        new_text = _rewrite(data, [*hosts, entry])
        rewritten = True
    after = _problems(new_text, path)
    new = [problem for problem in after if problem not in before]
    if new:
        raise ConfigError(new, path)
    if after:
        # Earlier problems elsewhere in the file: check the new host on its own terms.
        host = _host_from_text(new_text, path, name)
    else:
        host = parse_config(new_text, path, path.parent).host(name)
    try:
        _atomic_write(path, new_text)
    except OSError as exc:
        raise ConfigError(
            [Problem("config", f"cannot write {path}: {exc.strerror or exc}; check permissions")],
            path,
        ) from None
    if rewritten:
        warnings.warn(
            ConfigRewrittenWarning(
                f"{path}: hosts is written as an inline array, so the file was rewritten to add "
                "the host and its comments were lost"
            ),
            stacklevel=2,
        )
    return host


def _rewrite(data: dict[str, object], hosts: list[object]) -> str:
    """The whole document with ``hosts`` as [[hosts]] sections when they hold scalars only."""
    rest = {key: value for key, value in data.items() if key != "hosts"}
    scalar = (str, int, float, bool)
    if all(
        isinstance(host, dict) and all(isinstance(v, scalar) for v in host.values())
        for host in hosts
    ):
        sections = "".join(
            "\n[[hosts]]\n" + tomli_w.dumps(host) for host in hosts if isinstance(host, dict)
        )
        head = tomli_w.dumps(rest)
        return (head + sections) if head else sections.lstrip("\n")
    return tomli_w.dumps({**rest, "hosts": hosts})


def _host_from_text(text: str, path: Path, name: str) -> HostConfig:
    """The host ``name`` from a document that has problems elsewhere."""
    data = tomllib.loads(text)
    checker = _Checker(path.parent)
    defaults = _Defaults()
    raw_defaults = data.get("defaults")
    if isinstance(raw_defaults, dict):
        defaults = checker.defaults(raw_defaults)
    for host in checker.hosts(data, defaults):
        if host.name == name:
            return host
    raise ConfigError(checker.problems or [Problem("hosts", f"{_q(name)} was not added")], path)
