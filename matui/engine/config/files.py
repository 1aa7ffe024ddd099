"""Finding, reading and writing config files: the lookup order, atomic writes, `matui init`
and `matui host add`."""

from __future__ import annotations

import os
import stat
import tempfile
import tomllib
import warnings
from collections.abc import Mapping
from pathlib import Path

import tomli_w

from matui.engine.arch import ArchError, normalise_arch
from matui.engine.config.checker import _Checker, _Defaults
from matui.engine.config.model import (
    CONFIG_ENV,
    LOCAL_NAME,
    Config,
    ConfigError,
    ConfigRewrittenWarning,
    HostConfig,
    Problem,
    _q,
    parse_ssh_target,
)

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
    return Config(
        path,
        tuple(hosts),
        tuple(images),
        tuple(checker.warnings),
        tuple(checker.signatures),
    )


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
