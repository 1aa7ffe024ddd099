"""Issue 6, hostile input: no value that reaches a builder host can run anything there.

Values are thrown at every field that ends up in a remote command, two ways:

* **raw**, straight into :mod:`matui.engine.shell` (``buildx_argv``, ``imagetools_create_argv``,
  ``job_dir``) with no config validation in front: quoting alone must hold. Either
  ``check_value`` refuses the value (:class:`UnsafeValue`, only for control characters and
  undecodable text), or the command is built;
* **through the config file**: the value goes into one TOML key (``tags``, ``build_args`` ...),
  :func:`parse_config` refuses it (a :class:`ConfigError` naming that key, only when the value is
  really invalid for it) or accepts it, and the build is planned and its argv built exactly the
  way the runner does.

Every command that is built is run for real over SSH, through :meth:`RemoteScript.wire` (the same
path as every build), as ``printf '%s\\0' ARGV...``: the remote must print the argv back byte for
byte. The rig has three logins whose login shells are sh, fish and tcsh: the bulk batches take
turns on them, everything else runs under all three. Many values share one round trip, over one
reused connection per login. Payloads try to create canary files in the login's ``$HOME`` (or a
job directory) and in ``/tmp``; none may ever exist.

Also here: the real build path (upload, detached job.sh, follow, outcome, log by offset, cancel)
with hostile argvs; hostile run ids and job keys; and checks that the checks work (a payload run
on purpose is found; the same quoting without the wire does run a payload under fish).
"""

from __future__ import annotations

import asyncio
import io
import itertools
import math
import os
import random
import re
import shlex
import string
import tarfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matui.engine import shell
from matui.engine.arch import ARCHES, ArchError, Platform, normalise_arch
from matui.engine.config import ConfigError, HostConfig, ImageConfig, load_config, parse_config
from matui.engine.plan import plan_build
from matui.engine.probe import HostProbe
from matui.engine.refs import parse_repository
from matui.engine.shell import RemoteScript, UnsafeValue
from matui.engine.ssh import CommandResult, SshPool
from tests.helpers.rig import Rig

pytestmark = pytest.mark.rig

CI = bool(os.environ.get("CI"))

# --------------------------------------------------------------------------------------------
# Canaries: what a payload would create if it ever ran

# relative: lands in the login's $HOME, or in a job directory. (Not just "matui-canary": other
# rig tests make /tmp/matui-canary-* directories of their own.)
CANARY = "matui-hostile-canary"
CANARY_ABS = f"/tmp/{CANARY}-abs"
CONTROL_CANARY = f"/tmp/{CANARY}-control"  # made on purpose by the detector's own checks
FIND_CANARIES = RemoteScript(
    f"find \"$HOME\" -name '{CANARY}*' 2>/dev/null; "
    f"find /tmp -maxdepth 2 -name '{CANARY}*' 2>/dev/null; true\n"
)

_PAYLOAD_TEMPLATES = [
    "$(touch {c})",
    "`touch {c}`",  # sh, tcsh
    "; touch {c}",
    ";touch {c};",
    "'; touch {c}; '",
    '"; touch {c}; "',
    "'\"; touch {c}; #",
    "\\'\"; touch {c}; #",  # breaks out of POSIX single quotes under fish (see below)
    "\\'; touch {c}; '",
    "\ntouch {c}\n",
    "\rtouch {c}",
    "\x00; touch {c}",
    "(touch {c})",  # fish command substitution
    "begin; touch {c}; end",  # fish block
    "echo (touch {c})",
    "!touch {c}",  # tcsh/bash history, which tcsh expands even inside '...'
    "!$",
    "!!",
    "!-1",
    "^x^touch {c}^",
    "| touch {c}",
    "&& touch {c}",
    "|| touch {c}",
    "& touch {c} &",
    ">{c}",
    ">> {c}",
    "2>{c}",
    "$(printf x >{c})",
    ";touch${{IFS}}{c}",
    "$(IFS=_;c=touch_{c};$c)",
    "x=`touch {c}`",
    "$((1+1))`touch {c}`",
    "'$(touch {c})'",
    '"$(touch {c})"',
    "\\$(touch {c})",
    "\\\\$(touch {c})",
    "${{x:-$(touch {c})}}",
    "$'\\x3btouch {c}'",
    "eval 'touch {c}'",
    "%0atouch {c}",
    "\u2028touch {c}",
    "\x85touch {c}",
]
PAYLOADS = [t.format(c=c) for t in _PAYLOAD_TEMPLATES for c in (CANARY, CANARY_ABS)]

# --------------------------------------------------------------------------------------------
# The values

METACHARS = list(";|&$()`<>*?[]{}~!#'\"\\ =,%^@:/.")
CONTROLS = [
    "\n",
    "\x00",
    "\r",
    "\x1b",
    "\t",
    "\x7f",
    "\x07",
    "\x08",
    "\x0b",
    "\x0c",
    "\x85",
    "\x9b",
]
OPTIONS = [
    "--push=false",
    "-o",
    "--",
    "-",
    "-rf",
    "--output=type=local,dest=/tmp",
    "--platform",
    "--build-arg",
    "-t",
    "-e",
    "-n",
    "--help",
]
NON_ASCII = [
    "é",
    "ß",
    "İ",
    "日本",
    "🙂",
    "\U0001f600",
    "\u200f",  # right-to-left mark
    "\u202e",  # right-to-left override
    "\u200b",  # zero-width space
    "\ufeff",
    "\u00a0",
    "\uff1b",  # fullwidth semicolon
    "\uff04\uff08\uff54\uff4f\uff55\uff43\uff48\uff09",  # fullwidth $(touch)
    "\u2028",
]
WORDS = [
    "touch",
    "x",
    "Z9",
    "$HOME",
    "${HOME}",
    "$USER",
    "~",
    "~root",
    "*",
    "/etc/passwd",
    "..",
    "../",
    "/",
    ".",
    "%s",
    "%n",
    "%%",
    "\\0",
    "\\n",
    "\\",
    "$((1+1))",
    "$IFS",
    "{a,b}",
    "[a]",
    "?",
]
VALID_TAGS = ["1.0", "latest", "v1.2.3-rc_1", "1_0", "A", "x" * 120]
VALID_NAMES = [
    "registry.example.com/team/app",
    "127.0.0.1:5000/app",
    "localhost/a/b/c",
    "reg.example.com:443/a__b/c-d.e",
]
VALID_PLATFORMS = ["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/aarch64", "linux/386"]
VALID_OTHER = [
    "Dockerfile",
    "docker/Dockerfile.prod",
    "VERSION",
    "_x",
    "org.opencontainers.image.source",
    "runtime",
    "https://example.com/a?b=c&d=$e",
    "{tag}-{arch}",
    "{arch}.{tag}",
    "20240101-000000-abcdef",
    "amd64",
    "armv7",
    "sha256:" + "ab" * 32,
    "",
]
VALID = [*VALID_TAGS, *VALID_NAMES, *VALID_PLATFORMS, *VALID_OTHER]

any_text = st.text(max_size=3)  # any code point but lone surrogates
fragment = st.one_of(
    st.sampled_from(METACHARS),
    st.sampled_from(CONTROLS),
    st.sampled_from(OPTIONS),
    st.sampled_from(NON_ASCII),
    st.sampled_from(PAYLOADS),
    st.sampled_from(PAYLOADS),
    st.sampled_from(VALID),
    st.sampled_from(WORDS),
    # now and then a lone surrogate: how undecodable command-line bytes arrive in Python
    st.one_of(any_text, any_text, any_text, st.characters(categories=["Cs"])),
)
mixed = st.lists(fragment, min_size=1, max_size=6).map("".join)
hostile_values = st.one_of(st.sampled_from(VALID), mixed, mixed, mixed, st.text(max_size=12))

# In bulk, hypothesis's engine repeats itself: it replays and mutates earlier examples, so a
# list strategy yields far fewer distinct values than it draws. The bulk batches are therefore
# drawn from a random.Random over the same pieces, seeded by hypothesis (reproducible, and
# derandomized in CI); `hostile_values` above drives the structured, shrinkable test.
_KINDS: list[tuple[float, Callable[[random.Random], str]]] = [
    (0.25, lambda r: r.choice(PAYLOADS)),
    (0.15, lambda r: r.choice(METACHARS)),
    (0.10, lambda r: r.choice(VALID)),
    (0.10, lambda r: r.choice(WORDS)),
    (0.08, lambda r: r.choice(OPTIONS)),
    (0.10, lambda r: r.choice(NON_ASCII)),
    (0.07, lambda r: r.choice(CONTROLS)),
    (0.15, lambda r: "".join(random_char(r) for _ in range(r.randint(1, 4)))),
]
_WEIGHTS = [weight for weight, _ in _KINDS]


def random_char(rnd: random.Random) -> str:
    roll = rnd.random()
    if roll < 0.02:
        return chr(rnd.randint(0xD800, 0xDFFF))  # lone surrogate
    if roll < 0.5:
        return chr(rnd.randint(0x21, 0x7E))
    if roll < 0.8:
        return chr(rnd.randint(0xA0, 0xD7FF))
    return chr(rnd.randint(0xE000, 0x10FFFF))


def random_value(rnd: random.Random) -> str:
    if rnd.random() < 0.05:
        return rnd.choice(VALID)  # valid values must pass through exactly
    count = rnd.choice([1, 2, 2, 3, 3, 4, 5, 6])
    return "".join(rnd.choices(_KINDS, _WEIGHTS)[0][1](rnd) for _ in range(count))


BULK = 100  # values per batch: a few round trips
bulk_batches = st.integers(0, 2**64 - 1).map(
    lambda seed: [random_value(rnd) for rnd in [random.Random(seed)] for _ in range(BULK)]
)


# --------------------------------------------------------------------------------------------
# Independent descriptions of what is valid (written from the rules, not from matui's regexes)

ALNUM = frozenset(string.ascii_letters + string.digits)
CONTROL_SET = frozenset(chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)])


def unsendable(value: str) -> bool:
    """Control characters, or lone surrogates (which cannot even be encoded)."""
    return any(ch in CONTROL_SET or 0xD800 <= ord(ch) <= 0xDFFF for ch in value)


def plain(value: str, first: frozenset[str], rest: frozenset[str], most: int = 10**6) -> bool:
    return 0 < len(value) <= most and value[0] in first and all(ch in rest for ch in value)


def tag_ok(value: str) -> bool:
    return plain(value, ALNUM | {"_"}, ALNUM | set("_.-"), 128)


def name_ok(value: str) -> bool:
    """A run id / job key: a directory name on the builder."""
    return plain(value, ALNUM, ALNUM | set("_.-"), 128)


def platform_ok(value: str) -> bool:
    os_name, slash, arch = value.partition("/")
    if os_name != "linux" or not slash or not arch or set(arch) - set(ALNUM | set("_/-")):
        return False
    if arch != arch.lower() or arch.count("/") > 1 or "" in arch.split("/"):
        return False
    try:
        normalise_arch(arch)
    except ArchError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# Talking to the rig


@dataclass(frozen=True)
class Login:
    host: HostConfig
    shell: str


class Remote:
    """One :class:`SshPool` (one reused connection per login) on an event loop of its own, in a
    thread: synchronous test code (hypothesis) hands it commands and goes on building the next
    ones while the host runs them."""

    def __init__(self, rig: Rig) -> None:
        self.logins = [
            Login(
                HostConfig(
                    name=f"rig-{shell}",
                    arch="amd64",
                    address=rig.address,
                    port=rig.port_amd64,
                    user=rig.user + suffix,
                    identity=rig.key,
                    known_hosts=rig.known_hosts,
                ),
                shell,
            )
            for suffix, shell in (("", "sh"), ("fish", "fish"), ("tcsh", "tcsh"))
        ]
        self.pool = SshPool([login.host for login in self.logins], user_ssh_config=None)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.round_trips = 0
        self.turn = 0

    def next_login(self) -> Login:
        """The logins in turn: sh, fish, tcsh, sh ..."""
        self.turn += 1
        return self.logins[self.turn % len(self.logins)]

    def submit(
        self, login: Login, script: RemoteScript, stdin: bytes | None = None
    ) -> Future[CommandResult]:
        self.round_trips += 1
        coro = self.pool.run(login.host, script, input=stdin, timeout=120)
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, login: Login, script: RemoteScript, stdin: bytes | None = None) -> CommandResult:
        return self.submit(login, script, stdin).result()

    def raw(self, login: Login, command: str) -> asyncssh.SSHCompletedProcess:
        """``command`` exactly as given to the login shell, without :meth:`RemoteScript.wire`."""

        async def go() -> asyncssh.SSHCompletedProcess:
            conn = await self.pool.connect(login.host)
            return await conn.run(command, check=False, timeout=30, encoding=None)

        return asyncio.run_coroutine_threadsafe(go(), self.loop).result()

    def canaries(self) -> list[str]:
        found: list[str] = []
        for login in self.logins:
            result = self.run(login, FIND_CANARIES)
            assert result.ok, result.err_text()
            for line in result.out_text().splitlines():
                # /tmp is shared: every login sees the same file there
                found.append(line if line.startswith("/tmp/") else f"{login.host.user}: {line}")
        return sorted(set(found))

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.pool.close(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


RUN_ID = f"hostile-{os.getpid()}-{time.time_ns() % 10**9}"


@pytest.fixture(scope="module")
def rig_remote(rig: Rig) -> Iterator[Remote]:
    box = Remote(rig)
    try:
        for login in box.logins:
            result = box.run(login, RemoteScript('getent passwd "$(id -un)" | cut -d: -f7\n'))
            shell = result.out_text().strip().rsplit("/", 1)[-1]
            assert shell == login.shell, (
                f"rig user {login.host.user} should have login shell {login.shell}, has "
                f"{shell!r}; rerun `bash rig/rig up`"
            )
        remove_canaries(box)
        assert box.canaries() == []
        yield box
    finally:
        cleanup = RemoteScript(f'cd "$HOME" && rm -rf .matui/runs/{RUN_ID}\n')
        for login in box.logins:
            box.run(login, cleanup)
        box.close()


def remove_canaries(box: Remote) -> None:
    clear = RemoteScript(
        f"find \"$HOME\" -name '{CANARY}*' -exec rm -rf {{}} + 2>/dev/null; "
        f"rm -f /tmp/{CANARY}* 2>/dev/null; true\n"
    )
    for login in box.logins:
        box.run(login, clear)


@pytest.fixture(autouse=True)
def no_canary_after_each_test(rig_remote: Remote) -> Iterator[None]:
    yield
    assert rig_remote.canaries() == [], "a payload ran"


# --------------------------------------------------------------------------------------------
# Echo commands: printf '%s\0' ARGV... must print ARGV back exactly


@dataclass(frozen=True)
class Echo:
    field: str
    value: str
    argv: tuple[str, ...]
    line: str  # the sh line (quoted by remote.join)

    @property
    def expected(self) -> bytes:
        return b"".join(word.encode() + b"\0" for word in self.argv) + b"\n"


def echo(field_name: str, value: str, argv: Iterable[str]) -> Echo:
    words = tuple(argv)
    return Echo(field_name, value, words, shell.join(["printf", "%s\\0", *words]) + "; echo")


MAX_SCRIPT = 90_000  # bytes; its base64 in the wire must stay under the 128 KiB argv limit


def chunks(echoes: list[Echo]) -> Iterator[list[Echo]]:
    chunk: list[Echo] = []
    size = 0
    for item in echoes:
        cost = len(item.line.encode()) + 1
        if chunk and size + cost > MAX_SCRIPT:
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += cost
    if chunk:
        yield chunk


@dataclass
class Sent:
    login: Login
    echoes: list[Echo]
    result: Future[CommandResult]


def send(box: Remote, echoes: list[Echo], everywhere: bool) -> list[Sent]:
    """Start the echoes, many per round trip: under every login shell, or the next one in turn."""
    sent: list[Sent] = []
    for group in chunks(echoes):
        script = RemoteScript("\n".join(item.line for item in group) + "\n")
        assert len(script.wire()) < 128 * 1024
        for login in box.logins if everywhere else [box.next_login()]:
            sent.append(Sent(login, group, box.submit(login, script)))
    return sent


def check(sent: list[Sent]) -> None:
    """Every host printed every argv back exactly, and nothing on stderr."""
    problems: list[str] = []
    for item in sent:
        result = item.result.result()
        expected = b"".join(e.expected for e in item.echoes)
        if result.ok and result.stdout == expected and not result.stderr:
            continue
        shell = item.login.shell
        got = result.stdout.split(b"\n")
        for index, one in enumerate(item.echoes):
            line = got[index] + b"\n" if index < len(got) else b"<missing>"
            if line != one.expected:
                problems.append(
                    f"[{shell}] {one.field} = {one.value!r}: sent {list(one.argv)!r}, "
                    f"the host printed {line!r}"
                )
                break
        problems.append(f"[{shell}] exit {result.exit_status}, stderr {result.err_text()[:500]!r}")
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------------------------
# Raw: values straight into remote.py, no validation in front

RAW_FIELDS = (
    "platform",
    "ref",
    "dockerfile",
    "build-arg name",
    "build-arg value",
    "label key",
    "label value",
    "target",
    "imagetools target",
    "imagetools source",
    "run id",
    "job key",
)


def raw_buildx(value: str) -> list[str]:
    """buildx_argv with the value in every field at once (each field is a word of its own)."""
    return shell.buildx_argv(
        platform=value,
        ref=value,
        dockerfile=value,
        build_args={value: "1", "MATUI_VALUE": value},
        labels={value: "1", "matui.value": value},
        target=value or None,
    )


@dataclass
class Tally:
    values: set[str] = field(default_factory=set)
    accepted: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    outcomes: dict[tuple[str, str], bool] = field(default_factory=dict)
    commands: int = 0
    building: float = 0.0  # seconds spent validating and building commands
    waiting: float = 0.0  # seconds spent waiting for the hosts after that

    def outcome(self, field_name: str, value: str, accepted: bool) -> None:
        (self.accepted if accepted else self.refused)[field_name] += 1
        self.outcomes[field_name, value] = accepted

    def report(self, title: str, seconds: float, round_trips: int) -> str:
        lines = [
            f"{title}: {len(self.values)} distinct values, {self.commands} commands run over "
            f"SSH in {round_trips} round trips, {seconds:.1f} s ({self.building:.1f} s building "
            f"commands, {self.waiting:.1f} s more waiting for the hosts)",
            f"  {'field':26} {'accepted':>9} {'refused':>9}",
        ]
        for name in sorted(set(self.accepted) | set(self.refused)):
            lines.append(f"  {name:26} {self.accepted[name]:9} {self.refused[name]:9}")
        return "\n".join(lines)


def raw_echoes(value: str, tally: Tally) -> list[Echo]:
    bad = unsendable(value)
    argvs = {
        "buildx": raw_buildx(value),
        "imagetools": shell.imagetools_create_argv([value], [value], dry_run=True),
    }
    echoes: list[Echo] = []
    for kind, argv in argvs.items():
        try:
            echoes.append(echo(f"raw {kind}", value, argv))
        except UnsafeValue as exc:
            assert bad, f"{value!r} refused, yet it holds no control character: {exc}"
            continue
        assert not bad, f"{value!r} holds a control character or surrogate, yet was quoted"
    for name in RAW_FIELDS[:-2]:
        tally.outcome(f"raw {name}", value, bool(echoes))
    for name, run, key in (("run id", value, "amd64"), ("job key", "run1", value)):
        try:
            path = shell.job_dir(run, key)
        except UnsafeValue:
            assert not name_ok(value), f"{name} {value!r} is a plain name, yet refused"
            tally.outcome(f"raw {name}", value, False)
            continue
        assert name_ok(value), f"{name} {value!r} is not a plain name, yet accepted"
        tally.outcome(f"raw {name}", value, True)
        echoes.append(echo(f"raw {name}", value, [path]))
    return echoes


# --------------------------------------------------------------------------------------------
# Through the config file

CONFIG_FIELDS = (
    "name",
    "tag",
    "platform",
    "dockerfile",
    "build-arg name",
    "build-arg value",
    "label key",
    "label value",
    "target",
    "arch tag",
)
VALUE_ARG = "MATUI_HOSTILE_VALUE"
VALUE_LABEL = "matui.hostile.value"
DIGEST = "sha256:" + "0123456789abcdef" * 4
HOSTS = [HostConfig(name=a.replace("/", ""), arch=a, address="127.0.0.1") for a in ARCHES]
PROBES = [HostProbe(name=h.name, arch=h.arch, reachable=True, native_arch=h.arch) for h in HOSTS]


def entry(context: Path, index: int, fields: dict[str, str]) -> dict[str, object]:
    """An [[images]] table: the given fields hold the values, the others valid defaults."""
    table: dict[str, object] = {
        "name": fields.get("name", f"registry.example.com/matui-default/n{index}"),
        "tags": [fields.get("tag", "1.0")],
        "context": str(context),
        "platforms": [fields.get("platform", "linux/amd64")],
    }
    if "dockerfile" in fields:
        table["dockerfile"] = fields["dockerfile"]
    build_args = {}
    if "build-arg name" in fields:
        build_args[fields["build-arg name"]] = "1"
    if "build-arg value" in fields:
        build_args[VALUE_ARG] = fields["build-arg value"]
    labels = {}
    if "label key" in fields:
        labels[fields["label key"]] = "1"
    if "label value" in fields:
        labels[VALUE_LABEL] = fields["label value"]
    if build_args:
        table["build_args"] = build_args
    if labels:
        table["labels"] = labels
    if "target" in fields:
        table["target"] = fields["target"]
    if "arch tag" in fields:
        table["arch_tag"] = fields["arch tag"]
    return table


def problem_field(index: int, path: str, fields: dict[str, str]) -> str:
    """Which field of images[index] a problem's key path points at."""
    base = f"images[{index}]"
    exact = {
        f"{base}.name": "name",
        f"{base}.tags[0]": "tag",
        f"{base}.platforms[0]": "platform",
        f"{base}.dockerfile": "dockerfile",
        f"{base}.build_args.{VALUE_ARG}": "build-arg value",
        f'{base}.labels."{VALUE_LABEL}"': "label value",
        f"{base}.target": "target",
    }
    if path in exact:
        return exact[path]
    if path == f"{base}.arch_tag":
        # arch_tag is judged with the image's tag: a long tag can make any template too long
        return "arch tag" if "arch tag" in fields else "tag"
    if path.startswith(f"{base}.build_args."):
        return "build-arg name"
    if path.startswith(f"{base}.labels."):
        return "label key"
    raise AssertionError(f"unexpected problem at {path}")


def make_dockerfile(context: Path, value: str) -> None:
    """Create the file a dockerfile value names when it can exist inside the context, so that
    the only reason left to refuse the value is the value itself."""
    if not value or unsendable(value) or value.startswith(("/", "~")):
        return
    try:
        target = (context / value).resolve()
        if target == context or not target.is_relative_to(context) or target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("FROM scratch\n")
    except (OSError, ValueError):
        pass


def dockerfile_ok(context: Path, value: str) -> bool:
    if not value or unsendable(value) or value.startswith(("/", "~")):
        return False
    try:
        target = (context / value).resolve()
        return target.is_relative_to(context) and target.is_file()
    except (OSError, ValueError):
        return False


def may_refuse(field_name: str, value: str, context: Path) -> bool:
    """Whether refusing ``value`` in this field is justified: it holds something invalid."""
    if unsendable(value):
        return True
    if field_name == "name":
        return value not in VALID_NAMES
    if field_name == "tag":
        # the per-arch tag ({tag}-{arch}) must be a valid tag too
        return not tag_ok(value) or len(value) > 128 - len("-ppc64le")
    if field_name == "platform":
        return not platform_ok(value)
    if field_name == "dockerfile":
        return not dockerfile_ok(context, value)
    if field_name == "build-arg name":
        return not plain(value, frozenset(string.ascii_letters + "_"), ALNUM | {"_"})
    if field_name == "label key":
        return not plain(value, ALNUM, ALNUM | set("._/-"))
    if field_name == "target":
        return not plain(value, ALNUM, ALNUM | set("_.-"))
    if field_name == "arch tag":
        rendered = value.replace("{tag}", "1.0").replace("{arch}", "amd64")
        return "{" in rendered or "}" in rendered or not tag_ok(rendered) or rendered == "1.0"
    return False  # build-arg and label values: anything printable


SHELL_CHARS = frozenset(";|&$()`<>*?{}~!#'\"\\ \n")


def accepted_as_is(field_name: str, value: str, image: ImageConfig) -> None:
    """An accepted value reaches the config unchanged; the strict fields hold nothing a shell
    would care about."""
    if field_name == "name":
        assert image.name == value and not set(value) & SHELL_CHARS  # [ ] for IPv6 registries
    elif field_name == "tag":
        assert image.tags == (value,) and tag_ok(value)
    elif field_name == "platform":
        assert image.platforms == (Platform.parse(value),) and platform_ok(value)
    elif field_name == "dockerfile":
        assert image.dockerfile == value
    elif field_name == "build-arg name":
        assert image.build_args[value] == "1" and not set(value) & (SHELL_CHARS | {"[", "]"})
    elif field_name == "build-arg value":
        assert image.build_args[VALUE_ARG] == value
    elif field_name == "label key":
        assert image.labels[value] == "1" and not set(value) & (SHELL_CHARS | {"[", "]"})
    elif field_name == "label value":
        assert image.labels[VALUE_LABEL] == value
    elif field_name == "target":
        assert image.target == value and not set(value) & (SHELL_CHARS | {"[", "]"})
    elif field_name == "arch tag":
        assert image.arch_tag == value and tag_ok(image.arch_tag_for("1.0", image.platforms[0]))


def image_echoes(image: ImageConfig, what: str) -> list[Echo]:
    """The commands a build of this image sends, built as the runner and push_index build them."""
    plan = plan_build(image, image.tags, HOSTS, PROBES)
    echoes: list[Echo] = []
    for job in plan.jobs:
        argv = shell.buildx_argv(
            platform=str(job.platform),
            ref=job.ref,
            dockerfile=image.dockerfile,
            build_args=dict(image.build_args),
            labels=dict(image.labels),
            target=image.target,
        )
        echoes.append(echo("config build", what, argv))
        echoes.append(echo("config job dir", what, [shell.job_dir(RUN_ID, job.key)]))
    repo = parse_repository(image.name)
    index = shell.imagetools_create_argv(
        [repo.tag(tag) for tag in image.tags], [repo.digest(DIGEST) for _ in plan.jobs]
    )
    echoes.append(echo("config index", what, index))
    return echoes


def parse_images(context: Path, tables: list[dict[str, object]]) -> tuple[ImageConfig, ...]:
    return parse_config(tomli_w.dumps({"images": tables}), None, context).images


def has_surrogate(value: str) -> bool:
    return any(0xD800 <= ord(ch) <= 0xDFFF for ch in value)


def unreadable_configs(values: list[str], context: Path, tally: Tally, fields: list[str]) -> None:
    """A lone surrogate cannot be written to a config file as UTF-8: its bytes make the whole file
    unreadable, and load_config says so."""
    for value in values:
        if not has_surrogate(value):
            continue
        text = tomli_w.dumps({"images": [entry(context, 0, {"build-arg value": value})]})
        path = context.parent / "undecodable.toml"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert [p.path for p in caught.value.problems] == ["config"]
        assert "is not UTF-8 text" in str(caught.value)
        for name in fields:
            tally.outcome(f"config {name}", value, False)


def layout(values: list[str], fields: list[str]) -> list[dict[str, str]]:
    """Images for every (value, field) pair, each pair once: image k holds values[(k + f) % n]
    in field f. ``arch tag`` gets images of its own: it is judged together with the tag."""
    n = len(values)
    shared = [f for f in fields if f != "arch tag"]
    images = [{name: values[(k + f) % n] for f, name in enumerate(shared)} for k in range(n)]
    if "arch tag" in fields:
        images += [{"arch tag": value} for value in values]
    return [image for image in images if image]


def config_echoes(
    values: list[str], context: Path, tally: Tally, fields: Iterable[str] = CONFIG_FIELDS
) -> list[Echo]:
    """Every value into every config field; refused values must be invalid, accepted ones are
    planned and their commands built.

    A parse says which fields were refused (each problem names its key path); the images are
    parsed again with those fields left out, until that succeeds.
    """
    fields = list(fields)
    if not fields:
        return []
    unreadable_configs(values, context, tally, fields)
    values = [v for v in values if not has_surrogate(v)]
    if not values:
        return []
    for value in values:
        make_dockerfile(context, value)
    tables = layout(values, fields)
    refused: list[set[str]] = [set() for _ in tables]
    images: dict[int, ImageConfig] = {}
    for attempt in range(4):
        # After the first parse, only images that still hold a value are worth parsing again.
        active = [k for k, f in enumerate(tables) if attempt == 0 or set(f) - refused[k]]
        kept = [
            entry(context, k, {n: v for n, v in tables[k].items() if n not in refused[k]})
            for k in active
        ]
        try:
            parsed = parse_images(context, kept)
        except ConfigError as exc:
            before = sum(map(len, refused))
            for problem in exc.problems:
                match = re.match(r"images\[(\d+)\]", problem.path)
                assert match, f"unexpected problem {problem}"
                k = active[int(match.group(1))]
                refused[k].add(problem_field(int(match.group(1)), problem.path, tables[k]))
            # Left out, a refused field can reveal another: a long tag is only too long for its
            # per-arch tag once the image has a platform again.
            assert sum(map(len, refused)) > before, f"refused fields left out, still: {exc}"
            continue
        images = dict(zip(active, parsed, strict=True))
        break
    else:
        raise AssertionError("the config kept finding new problems")
    echoes: list[Echo] = []
    for k, fields_k in enumerate(tables):
        for name, value in fields_k.items():
            accepted = name not in refused[k]
            if accepted:
                assert not unsendable(value), f"config accepted {name} = {value!r}"
                accepted_as_is(name, value, images[k])
            else:
                assert may_refuse(name, value, context), f"config refused valid {name} {value!r}"
            tally.outcome(f"config {name}", value, accepted)
        if k in images:
            what = repr({n: v for n, v in fields_k.items() if n not in refused[k]})
            echoes += image_echoes(images[k], what)
    return echoes


# --------------------------------------------------------------------------------------------
# A batch: everything built, all of it run, compared


def exercise(
    box: Remote,
    values: list[str],
    context: Path,
    tally: Tally,
    *,
    everywhere: bool,
    config_fields: Iterable[str] = CONFIG_FIELDS,
) -> None:
    """Raw and config commands for every value, run while the next ones are being built."""
    start = time.monotonic()
    distinct = list(dict.fromkeys(values))
    tally.values.update(distinct)
    raw: list[Echo] = []
    for value in distinct:
        raw += raw_echoes(value, tally)
    sent = send(box, raw, everywhere)
    config = config_echoes(distinct, context, tally, config_fields)
    sent += send(box, config, everywhere)
    tally.commands += (len(raw) + len(config)) * (len(box.logins) if everywhere else 1)
    built = time.monotonic()
    check(sent)
    tally.building += built - start
    tally.waiting += time.monotonic() - built


def make_context(path: Path) -> Path:
    """A build context; dockerfile values get files of their own in it (see make_dockerfile)."""
    path = path.resolve()
    path.mkdir(exist_ok=True)
    (path / "Dockerfile").write_text("FROM scratch\n")
    return path


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_context(tmp_path_factory.mktemp("hostile") / "context")


# --------------------------------------------------------------------------------------------
# The properties

MIN_VALUES = 10_000
EVERY_FIELD = [*(f"raw {f}" for f in RAW_FIELDS), *(f"config {f}" for f in CONFIG_FIELDS)]


def test_ten_thousand_hostile_values_never_execute(rig_remote: Remote, context: Path) -> None:
    """The bulk: 10 000+ distinct values, each into every field; the batches take turns on the
    sh, fish and tcsh logins."""
    tally = Tally()
    started, trips = time.monotonic(), rig_remote.round_trips

    @settings(
        max_examples=math.ceil(MIN_VALUES * 1.3 / BULK),  # about 1 in 7 values repeats
        deadline=None,
        derandomize=CI,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(bulk_batches)
    def throw(values: list[str]) -> None:
        exercise(rig_remote, values, context, tally, everywhere=False)

    throw()
    leftovers = rig_remote.canaries()
    seconds, round_trips = time.monotonic() - started, rig_remote.round_trips - trips
    print("\n" + tally.report("hostile input, bulk", seconds, round_trips))
    assert leftovers == [], f"a payload ran: {leftovers}"
    assert len(tally.values) >= MIN_VALUES
    for name in EVERY_FIELD:
        assert tally.accepted[name] + tally.refused[name] >= MIN_VALUES, name
        assert tally.accepted[name] and tally.refused[name], name


def test_structured_hostile_values_under_every_shell(rig_remote: Remote, context: Path) -> None:
    """Hypothesis's own generation (it shrinks a failure to the smallest value), every command
    under all three login shells."""
    tally = Tally()
    started, trips = time.monotonic(), rig_remote.round_trips

    @settings(max_examples=40, deadline=None, derandomize=CI)
    @given(st.lists(hostile_values, min_size=10, max_size=60))
    def throw(values: list[str]) -> None:
        exercise(rig_remote, values, context, tally, everywhere=True)

    throw()
    seconds, round_trips = time.monotonic() - started, rig_remote.round_trips - trips
    print("\n" + tally.report("hostile input, structured", seconds, round_trips))
    assert rig_remote.canaries() == []


# --------------------------------------------------------------------------------------------
# Example by example, field by field (under all three login shells)

TOUCH = f"touch {CANARY}"
SHELLISH = [
    f"$({TOUCH})",
    f"`{TOUCH}`",
    f"; {TOUCH}",
    f"'; {TOUCH}; '",
    f"\\'\"; {TOUCH}; #",
    f"({TOUCH})",
    f"!{TOUCH}",
    f"| {TOUCH}",
    f">{CANARY}",
    "--push=false",
    "-o",
    "--",
    "é🙂\u200f\u202e",
    "a b\\c",
    "*",
    "~",
]
CONTROL_EXAMPLES = [f"\n{TOUCH}", f"\x00{TOUCH}", f"\r{TOUCH}", "\x1b[31m", "\x85", "\x9b", "\t"]
EXAMPLES: dict[str, tuple[list[str], list[str]]] = {
    "name": (
        ["registry.example.com/team/app", "127.0.0.1:5000/app", "[::1]:5000/app", "localhost/a"],
        [
            f"registry.example.com/app;{TOUCH}",
            f"$({TOUCH}).example.com/app",
            "registry.example.com/App",
            "registry.example.com/app:1.0",
            "registry.example.com/-o",
            "app",
            "ré.example.com/app",
            *SHELLISH,
            *CONTROL_EXAMPLES,
        ],
    ),
    "tag": (
        ["1.0", "v1.2.3-rc_1", "_x", "A" * 120],
        [f"1.0;{TOUCH}", "-rf", ".hidden", "1.0 ", "é", "x" * 129, *SHELLISH, *CONTROL_EXAMPLES],
    ),
    "platform": (
        ["linux/amd64", "linux/aarch64", "linux/arm/v7", "linux/arm64/v8", "linux/386"],
        [
            "linux/amd64,linux/arm64",
            f"linux/amd64;{TOUCH}",
            "--platform=linux/amd64",
            "windows/amd64",
            "linux/AMD64",
            "linux/amd64/",
            *SHELLISH,
            *CONTROL_EXAMPLES,
        ],
    ),
    "dockerfile": (
        ["Dockerfile", "docker/Dockerfile.prod", "-", *SHELLISH[:-2]],
        ["/etc/passwd", "../outside", "~/Dockerfile", "", "a/../../x", *CONTROL_EXAMPLES],
    ),
    "build-arg name": (
        ["VERSION", "_", "a1_B2"],
        ["1ABC", "A-B", "A=B", "A.B", "A B", "É", "--build-arg", *SHELLISH, *CONTROL_EXAMPLES],
    ),
    "build-arg value": (["", "1.0", "A=B=C", *SHELLISH], CONTROL_EXAMPLES),
    "label key": (
        ["org.opencontainers.image.source", "a/b-c_d", "9"],
        ["-x", ".x", "a=b", "a b", "é", *SHELLISH, *CONTROL_EXAMPLES],
    ),
    "label value": (["", "https://example.com/?a=b&c=$d", *SHELLISH], CONTROL_EXAMPLES),
    "target": (
        ["runtime", "build-2", "a.b_c"],
        ["-o", ".x", "a b", "a/b", "é", *SHELLISH, *CONTROL_EXAMPLES],
    ),
    "arch tag": (
        ["{tag}-{arch}", "{arch}-{tag}", "{tag}.{arch}", "{arch}", "release-{arch}"],
        [
            "{tag}",  # the per-arch tag would overwrite the release tag
            "{tag};{arch}",
            "{tag}-$(touch)",
            "{tag!r}-{arch}",
            "{0}-{arch}",
            "{tag",
            "-{arch}",
            "{arch}-" + "x" * 130,
            *SHELLISH,
            *CONTROL_EXAMPLES,
        ],
    ),
}


@pytest.mark.parametrize("field_name", list(EXAMPLES))
def test_examples_field_by_field(rig_remote: Remote, tmp_path: Path, field_name: str) -> None:
    accepted, refused = EXAMPLES[field_name]
    tally = Tally()
    exercise(
        rig_remote,
        [*accepted, *refused],
        make_context(tmp_path / "context"),
        tally,
        everywhere=True,
        config_fields=[field_name],
    )
    outcome = {v: ok for (f, v), ok in tally.outcomes.items() if f == f"config {field_name}"}
    assert {v: outcome[v] for v in accepted} == dict.fromkeys(accepted, True)
    assert {v: outcome[v] for v in refused} == dict.fromkeys(refused, False)


def test_examples_straight_into_remote(rig_remote: Remote, context: Path) -> None:
    """No validation in front: quoting alone keeps every payload a value."""
    tally = Tally()
    payloads = [*PAYLOADS, *SHELLISH, *OPTIONS, *NON_ASCII, *METACHARS, *WORDS]
    exercise(rig_remote, payloads, context, tally, everywhere=True, config_fields=[])
    for value in payloads:
        assert tally.outcomes["raw ref", value] == (not unsendable(value)), value
    for value in CONTROL_EXAMPLES:
        with pytest.raises(UnsafeValue, match="control characters"):
            RemoteScript.from_argv(raw_buildx(value))


# --------------------------------------------------------------------------------------------
# Run ids and job keys: they name a directory on the builder

HOSTILE_NAMES = [
    "",
    ".",
    "..",
    "../x",
    "../../../tmp",
    "/tmp",
    "a/b",
    "-rf",
    "--",
    ".matui",
    "a b",
    f"$({TOUCH})",
    f"`{TOUCH}`",
    f"x;{TOUCH}",
    "*",
    "é",
    "a\nb",
    "x" * 129,
]

JOB_SCRIPTS: dict[str, Callable[[str, str], RemoteScript]] = {
    "upload": shell.upload_script,
    "launch": lambda run, key: shell.launch_script(run, key, ["true"]),
    "follow": lambda run, key: shell.follow_script(run, key, 0, 1),
    "read": lambda run, key: shell.read_from_script(run, key, 0, 10),
    "outcome": shell.outcome_script,
    "cancel": shell.cancel_script,
}


@pytest.mark.parametrize("value", HOSTILE_NAMES)
def test_hostile_run_ids_and_job_keys_are_refused(value: str) -> None:
    for name, make in JOB_SCRIPTS.items():
        with pytest.raises(UnsafeValue):
            make(value, "amd64")
            pytest.fail(f"{name} took run id {value!r}")
        with pytest.raises(UnsafeValue):
            make("20240101-000000-abcdef", value)
            pytest.fail(f"{name} took job key {value!r}")


def test_run_ids_and_job_keys_refused_or_harmless(rig_remote: Remote) -> None:
    """Any value: every job script refuses it, or it is a plain name and the scripts only look
    for a job directory that is not there (exit 97), under every login shell."""
    checked: list[str] = []

    @settings(max_examples=25, deadline=None, derandomize=CI)
    @given(
        st.lists(
            st.one_of(
                hostile_values, st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True)
            ),
            min_size=5,
            max_size=30,
        )
    )
    def throw(values: list[str]) -> None:
        lines: list[str] = []
        for value in dict.fromkeys(values):
            for name, make in JOB_SCRIPTS.items():
                for run, key in ((value, "amd64"), (f"{RUN_ID}-absent", value)):
                    try:
                        script = make(run, key)
                    except UnsafeValue:
                        assert not name_ok(value), f"{name}: plain name {value!r} refused"
                        continue
                    assert name_ok(value), f"{name} took {value!r}"
                    if name not in ("upload", "launch"):  # those would make the directory
                        lines.append(f"( {script.script} )\necho rc=$?")
            checked.append(value)
        if not lines:
            return
        script = RemoteScript("\n".join(lines) + "\n")
        for login in rig_remote.logins:
            result = rig_remote.run(login, script)
            assert result.ok and result.out_text().split() == ["rc=97"] * len(lines), (
                login.shell,
                result.out_text(),
            )

    throw()
    print(f"\nrun ids / job keys: {len(set(checked))} distinct values")


# --------------------------------------------------------------------------------------------
# The real build path: context upload, detached job, follow, outcome, log, cancel


def empty_tar() -> bytes:
    buffer = io.BytesIO()
    tarfile.open(fileobj=buffer, mode="w").close()
    return buffer.getvalue()


def test_hostile_argv_through_a_detached_job(rig_remote: Remote) -> None:
    """launch_script quotes the argv twice (into job.sh, and job.sh into the script); the job's
    build.log must hold exactly the words, read back by follow and by offset."""
    jobs = itertools.count()
    launched: set[str] = set()

    @settings(max_examples=12, deadline=None, derandomize=CI)
    @given(st.lists(hostile_values, min_size=1, max_size=30), bulk_batches)
    def launch(structured: list[str], bulk: list[str]) -> None:
        values = [v for v in dict.fromkeys([*structured, *bulk]) if not unsendable(v)]
        number = next(jobs)
        login, key = rig_remote.logins[number % len(rig_remote.logins)], f"job{number}"
        while True:
            words = [word for value in values for word in raw_buildx(value)]
            script = shell.launch_script(RUN_ID, key, ["printf", "%s\\0", *words])
            if len(script.wire()) < 120_000:
                break
            values = values[: len(values) // 2]
        expected = b"".join(word.encode() + b"\0" for word in words)

        upload = rig_remote.run(login, shell.upload_script(RUN_ID, key), empty_tar())
        assert upload.ok, upload.err_text()
        started = rig_remote.run(login, script)
        assert started.ok, started.err_text()
        state, pid = started.out_text().split()
        assert state == "started"
        follow = rig_remote.run(login, shell.follow_script(RUN_ID, key, 0, int(pid)))
        assert follow.ok and expected.startswith(follow.stdout)
        outcome = rig_remote.run(login, shell.outcome_script(RUN_ID, key)).out_text()
        assert "@@matui:exit=0\n" in outcome, outcome
        assert re.search(rf"@@matui:size=\s*{len(expected)}\n", outcome), outcome
        log = rig_remote.run(login, shell.read_from_script(RUN_ID, key, 0, len(expected)))
        assert log.ok and log.stdout == expected, (login.shell, values)
        cancel = rig_remote.run(login, shell.cancel_script(RUN_ID, key, grace=0.2))
        assert cancel.ok, cancel.err_text()
        launched.update(values)

    launch()
    print(f"\ndetached jobs: {len(launched)} distinct values through job.sh")


# --------------------------------------------------------------------------------------------
# The checks check something


def test_the_canary_check_finds_a_payload_that_ran(rig_remote: Remote) -> None:
    for login in rig_remote.logins:
        script = RemoteScript(f'touch {CANARY}-control "{CONTROL_CANARY}-$(id -un)"\n')
        ran = rig_remote.run(login, script)
        assert ran.ok, ran.err_text()
    found = rig_remote.canaries()
    remove_canaries(rig_remote)
    for login in rig_remote.logins:
        user = login.host.user
        assert any(
            line.startswith(f"{user}: /") and line.endswith(f"/{user}/{CANARY}-control")
            for line in found
        ), found
        assert f"{CONTROL_CANARY}-{user}" in found, found
    assert len(found) == 2 * len(rig_remote.logins)
    assert rig_remote.canaries() == []


def test_posix_quoting_alone_would_not_hold_under_fish_and_tcsh(rig_remote: Remote) -> None:
    """Why the wire exists: the same shlex-quoted command, handed straight to the login shell,
    runs a payload under fish (a backslash escapes a quote inside '...') and breaks under tcsh
    (history ! inside '...'). Through wire() both come back exactly."""
    by_shell = {login.shell: login for login in rig_remote.logins}
    fish_value = f"\\'\"; touch {CONTROL_CANARY}; #"
    tcsh_value = "a!b"
    for login, value in ((by_shell["fish"], fish_value), (by_shell["tcsh"], tcsh_value)):
        argv = ["printf", "%s\\n", value]
        straight = rig_remote.raw(login, shlex.join(argv))
        assert straight.stdout != f"{value}\n".encode()
        wired = rig_remote.run(login, RemoteScript.from_argv(argv))
        assert wired.ok and wired.stdout == f"{value}\n".encode() and not wired.stderr
    ran = rig_remote.canaries()
    remove_canaries(rig_remote)
    assert ran == [CONTROL_CANARY]
    # and plain sh takes the shlex-quoted command as it is
    sh_straight = rig_remote.raw(by_shell["sh"], shlex.join(["printf", "%s\\n", fish_value]))
    assert sh_straight.stdout == f"{fish_value}\n".encode()
