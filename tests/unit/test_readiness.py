"""Host readiness: the free-disk floor (config key and rule) and the registry check the probe
runs on a host (the real script, run by sh here against a small local HTTP server, with the
docker config.json kinds a host can have) and the rule over what it found."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from matui.engine.config import (
    DEFAULT_MIN_FREE_DISK,
    ConfigError,
    HostConfig,
    parse_config,
    parse_size,
)
from matui.engine.flags import FlagKind, Severity, disk_floor_flags, push_access_flags
from matui.engine.probe import HostProbe, RegistryAccess, parse_registry_access, split_sections
from matui.engine.shell import probe_script

GIB = 1024**3

# ---- min_free_disk --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("0", 0),
        ("5GiB", 5 * GIB),
        ("5 GiB", 5 * GIB),
        ("5g", 5 * GIB),
        ("1.5GB", 1_500_000_000),
        ("500MiB", 500 * 1024**2),
        ("100kb", 100_000),
        ("2T", 2 * 1024**4),
        ("4096", 4096),
        ("12B", 12),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "GiB", "5 parsecs", "-1GiB", "1e9", "5 G i B", "five"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(
        ValueError, match=r'is not a size; write a number and a unit, e\.g\. "5GiB"'
    ):
        parse_size(text)


HOSTS = """
[defaults]
{defaults}
[[hosts]]
name = "a"
arch = "amd64"
address = "a.example"
{host}
[[hosts]]
name = "b"
arch = "arm64"
address = "b.example"
"""


def hosts(defaults: str = "", host: str = "") -> tuple[HostConfig, ...]:
    text = HOSTS.format(defaults=defaults, host=host)
    return parse_config(text, None, Path(".")).hosts


def test_min_free_disk_default_defaults_and_per_host() -> None:
    assert [h.min_free_disk for h in hosts()] == [DEFAULT_MIN_FREE_DISK] * 2
    assert DEFAULT_MIN_FREE_DISK == 2 * GIB
    found = hosts('min_free_disk = "10GiB"', 'min_free_disk = "0"')
    assert [h.min_free_disk for h in found] == [0, 10 * GIB]


@pytest.mark.parametrize(
    ("defaults", "host", "problem"),
    [
        ('min_free_disk = "lots"', "", 'defaults.min_free_disk: "lots" is not a size'),
        ("", 'min_free_disk = "5 GiBs"', 'hosts[0].min_free_disk: "5 GiBs" is not a size'),
        (
            "min_free_disk = 5",
            "",
            "defaults.min_free_disk: expected a string, got an integer (5); write it as "
            'min_free_disk = "5GiB"',
        ),
    ],
)
def test_min_free_disk_problems(defaults: str, host: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        hosts(defaults, host)
    found = [str(p) for p in caught.value.problems if "min_free_disk" in p.path]
    assert len(found) == 1 and found[0].startswith(problem), found


def probe(name: str, free: int | None, *registries: RegistryAccess) -> HostProbe:
    return HostProbe(name, "amd64", True, free_bytes=free, registries=registries)


def test_disk_floor_flags() -> None:
    config = hosts('min_free_disk = "10GiB"', 'min_free_disk = "0"')
    probes = [probe("a", 1), probe("b", 9 * GIB)]
    (flag,) = disk_floor_flags(config, probes)
    assert (flag.kind, flag.severity, flag.subject) == (FlagKind.DISK_SPACE, Severity.ERROR, "b")
    assert flag.message.startswith(
        "host b has 9.0 GiB free where its docker keeps its data, below the floor of 10.0 GiB "
        "(min_free_disk); free space there (`matui gc`"
    )
    assert flag.evidence == {"free_bytes": 9 * GIB, "min_free_disk": 10 * GIB}
    # unknown free space, or enough of it: nothing to say
    assert disk_floor_flags(config, [probe("b", None), probe("b", 10 * GIB)]) == []


# ---- the registry check ---------------------------------------------------------------------


def test_parse_registry_access() -> None:
    text = (
        "reg 127.0.0.1:5000 curl 0 200 auth=0 helper=0 store=0\n"
        "reg r.example.com curl 7 000 auth=1 helper=0 store=0\n"
        "reg q.example.com none 0 000 auth=0 helper=1 store=1\n"
        "some noise the shell printed\n"
    )
    assert parse_registry_access(text) == (
        RegistryAccess("127.0.0.1:5000", "curl", 200),
        RegistryAccess("r.example.com", "curl", None, 7, login=True),
        RegistryAccess("q.example.com", None, None, 0, helper=True, store=True),
    )


def test_push_access_flags() -> None:
    registries = ["open:5000", "down:5000", "locked:5000", "mine:5000", "nocurl:5000"]
    found = probe(
        "a",
        None,
        RegistryAccess("open:5000", "curl", 200),
        RegistryAccess("down:5000", "curl", None, 7),
        RegistryAccess("locked:5000", "curl", 401),
        RegistryAccess("mine:5000", "wget", 401, store=True),
        RegistryAccess("nocurl:5000", None, None),
    )
    flags = push_access_flags([found], registries)
    assert [(f.kind, f.severity, f.evidence["registry"]) for f in flags] == [
        (FlagKind.PUSH_ACCESS, Severity.ERROR, "down:5000"),
        (FlagKind.PUSH_ACCESS, Severity.ERROR, "locked:5000"),
        (FlagKind.PUSH_ACCESS, Severity.INFO, "nocurl:5000"),
    ]
    assert flags[0].message.startswith(
        "host a cannot reach registry down:5000: the connection was refused (curl exit 7)"
    )
    assert "run `docker login locked:5000` on a" in flags[1].message
    # a registry the host was not asked about (a host the probe did not reach) is not judged
    assert push_access_flags([probe("b", None)], registries) == []


class _Registry(BaseHTTPRequestHandler):
    status = 401

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/v2/" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def locked_registry() -> Iterator[str]:
    """A registry stand-in on loopback whose /v2/ answers 401 (it wants a login)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


SECRET = "c2VjcmV0LXBhc3N3b3Jk"


@pytest.mark.parametrize(
    ("config", "login", "helper", "store"),
    [
        (None, False, False, False),
        ('{"auths": {}}', False, False, False),
        (
            '{\n  "auths": {\n    "REG": {\n      "auth": "SECRET"\n    }\n  }\n}',
            True,
            False,
            False,
        ),
        ('{"auths": {"http://REG/v1/": {"auth": "SECRET"}}}', True, False, False),
        ('{"auths": {"REG": {}}, "credsStore": "pass"}', False, False, True),
        ('{"credHelpers": {"REG": "ecr-login"}}', False, True, False),
        ('{"auths": {"other.example.com": {"auth": "SECRET"}}}', False, False, False),
    ],
)
@pytest.mark.skipif(shutil.which("curl") is None, reason="the host-side check needs curl here")
def test_the_probe_reads_the_hosts_login_and_registry_answer(
    tmp_path: Path,
    locked_registry: str,
    config: str | None,
    login: bool,
    helper: bool,
    store: bool,
) -> None:
    if config is not None:
        (tmp_path / ".docker").mkdir()
        text = config.replace("REG", locked_registry).replace("SECRET", SECRET)
        (tmp_path / ".docker" / "config.json").write_text(text)
    closed = "127.0.0.1:9"  # discard: nothing listens there
    script = probe_script([locked_registry, closed]).script
    done = subprocess.run(
        ["sh", "-s"],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert SECRET not in done.stdout + done.stderr  # the login is looked for, never printed
    body, rc = split_sections(done.stdout)["registry"]
    assert rc == 0
    asked, unreachable = parse_registry_access(body)
    assert asked == RegistryAccess(locked_registry, "curl", 401, 0, login, helper, store)
    assert (unreachable.registry, unreachable.status, unreachable.exit_code) == (closed, None, 7)
    errors = push_access_flags([probe("a", None, asked, unreachable)], [locked_registry, closed])
    assert len(errors) == (1 if login or helper or store else 2)
