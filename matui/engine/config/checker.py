"""Checking a config document: one problem per mistake, each naming the key and the fix."""

from __future__ import annotations

import os
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

import regex as regex_lib  # type: ignore[import-untyped]  # the package ships no type hints

from matui.engine.arch import ARCHES, ArchError, Platform, normalise_arch
from matui.engine.builders import ATTESTATIONS
from matui.engine.config.model import (
    _ADDRESS_RE,
    _ARCH_PLACEHOLDERS,
    _BUILD_ARG_RE,
    _CAUSE_RE,
    _ENV_NAME_RE,
    _HOST_NAME_RE,
    _LABEL_KEY_RE,
    _MAX_ADDRESS,
    _SECRET_ID_RE,
    _TARGET_RE,
    _USER_RE,
    DEFAULT_ARCH_TAG,
    DEFAULT_JOB_RETENTION_DAYS,
    DEFAULT_MIN_FREE_DISK,
    IMAGE_PLACEHOLDER,
    MAX_JOB_RETENTION_DAYS,
    MAX_JOBS,
    SECRET_KINDS,
    FailureSignature,
    HostConfig,
    ImageConfig,
    Problem,
    SecretSource,
    _control_problem,
    _did_you_mean,
    _got,
    _key_path,
    _not_a,
    _q,
    _reword,
    _show,
    _type_name,
    looks_like_secret,
    parse_size,
    parse_ssh_target,
    reserved_build_arg,
)
from matui.engine.refs import RefError, check_tag, parse_repository

# Checking


def _hidden_control_problem(value: str) -> str:
    """:func:`_control_problem` without the value, for a value that may be secret."""
    codes = sorted({f"0x{ord(ch):02x}" for ch in value if ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0})
    what = f"control characters ({', '.join(codes)})" if codes else "undecodable text"
    return f"the value (not shown: it may be secret) contains {what}; remove them"


class _Key(NamedTuple):
    kind: type
    example: str
    required: bool = False


_TOP_KEYS: dict[str, _Key] = {
    "defaults": _Key(dict, "[defaults]"),
    "hosts": _Key(list, "[[hosts]]"),
    "images": _Key(list, "[[images]]"),
    "failure_signatures": _Key(list, "[[failure_signatures]]"),
}
_DEFAULT_KEYS: dict[str, _Key] = {
    "user": _Key(str, 'user = "builder"'),
    "identity": _Key(str, 'identity = "~/.ssh/id_ed25519"'),
    "known_hosts": _Key(str, 'known_hosts = "~/.ssh/known_hosts"'),
    "job_retention_days": _Key(int, f"job_retention_days = {DEFAULT_JOB_RETENTION_DAYS}"),
    "min_free_disk": _Key(str, 'min_free_disk = "5GiB"'),
    "max_jobs": _Key(int, "max_jobs = 2"),
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
    "job_retention_days": _Key(int, f"job_retention_days = {DEFAULT_JOB_RETENTION_DAYS}"),
    "min_free_disk": _Key(str, 'min_free_disk = "5GiB"'),
    "max_jobs": _Key(int, "max_jobs = 2"),
    "builder": _Key(str, 'builder = "arm-fleet"'),
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
    "secrets": _Key(dict, 'secrets = { NPM_TOKEN = "env:NPM_TOKEN" }'),
    "cache": _Key(str, 'cache = "registry.example.com/team/cache"'),
    "attestations": _Key(list, 'attestations = ["provenance", "sbom"]'),
}


_SIGNATURE_EXAMPLE = "pattern = 'npm ERR! code E(AI_AGAIN|CONNRESET)'"
_SIGNATURE_KEYS: dict[str, _Key] = {
    "pattern": _Key(str, _SIGNATURE_EXAMPLE, required=True),
    "cause": _Key(str, 'cause = "npm-registry-flaky"', required=True),
    "advice": _Key(str, 'advice = "the npm mirror dropped us: retry"', required=True),
    "retry": _Key(bool, "retry = true"),
}
# The flags failure signatures are matched with (matui.engine.build.failure uses the same).
SIGNATURE_FLAGS = regex_lib.VERSION0


@dataclass
class _Defaults:
    user: str | None = None
    identity: Path | None = None
    known_hosts: Path | None = None
    job_retention_days: int = DEFAULT_JOB_RETENTION_DAYS
    min_free_disk: int = DEFAULT_MIN_FREE_DISK
    max_jobs: int | None = None


class _Checker:
    """Walks the parsed TOML, collecting one :class:`Problem` per mistake."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.problems: list[Problem] = []
        self.warnings: list[str] = []
        self.names_complete = True
        self.signatures: list[FailureSignature] = []

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
        hide: Callable[[str], bool] | None = None,
    ) -> dict[str, str]:
        """The ``name = "string"`` pairs of a table. A value whose name ``hide`` says may be
        secret is never quoted back in a problem."""
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
                secret = hide is not None and hide(name)
                got = _type_name(item) if secret else _got(item)
                shown = "..." if secret else _show(item).strip(chr(34))
                self.add(path, f'expected a string, got {got}; quote it: {name} = "{shown}"')
            elif bad := _control_problem(item):
                if hide is not None and hide(name):
                    bad = _hidden_control_problem(item)
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
        self.signatures = self.failure_signatures(data)
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
        days = self.get(
            table, "job_retention_days", "defaults", _DEFAULT_KEYS["job_retention_days"], where
        )
        if isinstance(days, int) and self.retention(days, "defaults.job_retention_days"):
            result.job_retention_days = days
        spec = _DEFAULT_KEYS["min_free_disk"]
        floor = self.string(table, "min_free_disk", "defaults", spec, where)
        if floor is not None and (size := self.size(floor, "defaults.min_free_disk")) is not None:
            result.min_free_disk = size
        jobs = self.get(table, "max_jobs", "defaults", _DEFAULT_KEYS["max_jobs"], where)
        if isinstance(jobs, int) and self.max_jobs(jobs, "defaults.max_jobs"):
            result.max_jobs = jobs
        return result

    def max_jobs(self, jobs: int, path: str) -> bool:
        if 1 <= jobs <= MAX_JOBS:
            return True
        self.add(
            path,
            f"{jobs} is not a number of jobs; use 1 to {MAX_JOBS} (how many matui builds the "
            "host runs at once), or leave max_jobs out for no cap",
        )
        return False

    def size(self, text: str, path: str) -> int | None:
        try:
            return parse_size(text)
        except ValueError as exc:
            self.add(path, str(exc))
            return None

    def retention(self, days: int, path: str) -> bool:
        if 1 <= days <= MAX_JOB_RETENTION_DAYS:
            return True
        self.add(
            path,
            f"{days} is not a number of days matui can keep finished jobs for; use 1 to "
            f"{MAX_JOB_RETENTION_DAYS} (at least a day, so a matui that lost a build can still "
            f"read its log), e.g. job_retention_days = {DEFAULT_JOB_RETENTION_DAYS}",
        )
        return False

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
        retention = take("job_retention_days")
        if isinstance(retention, int):
            self.retention(retention, f"{prefix}.job_retention_days")
        floor = take("min_free_disk")
        size = self.size(floor, f"{prefix}.min_free_disk") if isinstance(floor, str) else None
        builder = take("builder")
        if isinstance(builder, str) and not _HOST_NAME_RE.fullmatch(builder):
            self.add(
                f"{prefix}.builder",
                f"{_q(builder)} is not a buildx builder name; give a name `docker buildx ls` "
                'lists on the host (letters, digits, _ . -), e.g. builder = "arm-fleet"',
            )
        max_jobs = take("max_jobs")
        if isinstance(max_jobs, int):
            self.max_jobs(max_jobs, f"{prefix}.max_jobs")
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
            job_retention_days=(
                retention if isinstance(retention, int) else defaults.job_retention_days
            ),
            min_free_disk=size if size is not None else defaults.min_free_disk,
            builder=builder if isinstance(builder, str) else None,
            max_jobs=max_jobs if isinstance(max_jobs, int) else defaults.max_jobs,
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

    # -- failure signatures --------------------------------------------------------------------

    def failure_signatures(self, data: Mapping[str, object]) -> list[FailureSignature]:
        result: list[FailureSignature] = []
        for prefix, entry in self.entries(data, "failure_signatures"):
            self.keys(entry, prefix, _SIGNATURE_KEYS)
            count = len(self.problems)
            where = f"this [[failure_signatures]] entry ({prefix})"
            pattern, cause, advice, retry = (
                self.get(entry, key, prefix, _SIGNATURE_KEYS[key], where)
                for key in ("pattern", "cause", "advice", "retry")
            )
            if isinstance(pattern, str):
                self.signature_pattern(pattern, f"{prefix}.pattern")
            if isinstance(cause, str) and not _CAUSE_RE.fullmatch(cause):
                self.add(
                    f"{prefix}.cause",
                    f"{_q(cause)} is not a cause name; use 1-40 of a-z 0-9 - (starting with a "
                    'letter or digit), e.g. cause = "npm-registry-flaky"',
                )
            if isinstance(advice, str) and not advice.strip():
                self.add(
                    f"{prefix}.advice",
                    "is empty; say what the on-call engineer should do, e.g. "
                    + _SIGNATURE_KEYS["advice"].example,
                )
            if len(self.problems) == count:
                assert isinstance(pattern, str) and isinstance(cause, str)
                assert isinstance(advice, str)
                result.append(FailureSignature(pattern, cause, advice, retry is True))
        return result

    def signature_pattern(self, pattern: str, path: str) -> None:
        fix = (
            f"write a regular expression (Python syntax; a TOML literal string in single quotes "
            f"keeps backslashes as they are), e.g. {_SIGNATURE_EXAMPLE}"
        )
        if not pattern:
            self.add(path, f"is empty; {fix}")
            return
        try:
            compiled = regex_lib.compile(pattern, SIGNATURE_FLAGS)
        except (regex_lib.error, OverflowError, RecursionError) as exc:
            self.add(path, f"{_q(pattern)} is not a valid regular expression ({exc}); {fix}")
            return
        if compiled.search("") is not None:
            self.add(
                path,
                f"{_q(pattern)} matches an empty line, so it would match every failure; make "
                f"it match the text that identifies the cause, e.g. {_SIGNATURE_EXAMPLE}",
            )

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

        # {image} in context, dockerfile, build-arg and label values: the image's own name
        # (the repository's last part), so images of a release can share one entry's shape.
        short = name.rsplit("/", 1)[-1] if name is not None else None

        def fill(text: str) -> str:
            return text.replace(IMAGE_PLACEHOLDER, short) if short is not None else text

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
            context = self.resolve(fill(context_text), f"{prefix}.context")
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
            dockerfile = fill(dockerfile_text)
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
            hide=looks_like_secret,
        )
        for arg in list(build_args):
            arg_path = _key_path(_key_path(prefix, "build_args"), arg)
            if reserved_build_arg(arg):
                del build_args[arg]
                self.add(
                    arg_path,
                    f"{_q(arg)} cannot be a build argument: matui hands build-arg values to "
                    "buildx through its environment (never its command line), where the "
                    f"builder's shell, docker or buildx read {arg} themselves; rename the ARG "
                    "in the Dockerfile and here",
                )
            elif looks_like_secret(arg):
                self.warnings.append(
                    f"{arg_path}: looks like a secret; a build arg's value is kept in the "
                    "image's history (docker history shows it) — declare it under secrets "
                    f'instead: secrets = {{ {arg} = "env:{arg}" }}, and read it in the '
                    f"Dockerfile with RUN --mount=type=secret,id={arg} (the value is in "
                    f"/run/secrets/{arg} for that step only)"
                )
        secrets = self.secrets(entry, prefix, spec("secrets"), where)
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

        cache = self.string(entry, "cache", prefix, spec("cache"), where)
        if cache is not None:
            try:
                parse_repository(cache)
            except RefError as exc:
                self.add(f"{prefix}.cache", _reword(str(exc), cache))
        attestations: list[str] = []
        for path, kind in (
            self.string_list(entry, "attestations", prefix, spec("attestations"), where) or []
        ):
            if kind not in ATTESTATIONS:
                self.add(
                    path,
                    f"{_q(kind)} is not an attestation matui asks buildx for; use "
                    f"{' or '.join(map(_q, ATTESTATIONS))}",
                )
            elif kind not in attestations:
                attestations.append(kind)

        if len(self.problems) > count:
            return None
        assert name is not None and context is not None
        build_args = {key: fill(value) for key, value in build_args.items()}
        labels = {key: fill(value) for key, value in labels.items()}
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
            secrets=MappingProxyType(secrets),
            cache=cache,
            attestations=tuple(attestations),
        )

    def secrets(
        self, entry: Mapping[str, object], prefix: str, spec: _Key, where: str
    ) -> dict[str, SecretSource]:
        """``secrets = { ID = "env:VARIABLE" | "file:PATH" }``: the sources only; the values are
        read when a build starts (:mod:`matui.engine.build.secrets`)."""
        raw = self.string_table(
            entry,
            "secrets",
            prefix,
            spec,
            where,
            _SECRET_ID_RE,
            "secret ids are 1-128 of letters, digits and _ . - (not starting with . or -), "
            "the id= of RUN --mount=type=secret",
        )
        result: dict[str, SecretSource] = {}
        base = _key_path(prefix, "secrets")
        for name, text in raw.items():
            path = _key_path(base, name)
            kind, colon, rest = text.partition(":")
            variable = re.sub(r"[^A-Za-z0-9_]", "_", name).upper()
            variable = f"_{variable}" if variable[0].isdigit() else variable
            example = f'{_key_path("", name)} = "env:{variable}" or "file:~/.secrets/{name}"'
            if not colon or kind not in SECRET_KINDS:
                self.add(
                    path,
                    f"{_q(text)} is not a secret source; write env:VARIABLE (an environment "
                    "variable of matui's) or file:PATH (a file on this machine), e.g. " + example,
                )
            elif kind == "env":
                if _ENV_NAME_RE.fullmatch(rest):
                    result[name] = SecretSource("env", variable=rest)
                else:
                    self.add(
                        path,
                        f"{_q(rest)} is not an environment variable name; use letters, digits "
                        f"and _ (not starting with a digit) after env:, e.g. {example}",
                    )
            elif not rest:
                self.add(path, f"file: needs the path of a file after it, e.g. {example}")
            elif resolved := self.resolve(rest, path):
                result[name] = SecretSource("file", path=resolved)
        return result

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
