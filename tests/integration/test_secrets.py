"""Issue 11, secrets off argv and off disk, on the rig: a build with a secret-looking build arg
and two BuildKit secrets (one from matui's environment, one from a file) succeeds with each
step reading its value, while

* no process on the host has a value in its arguments during the build (``/proc/*/cmdline`` of
  every process on this machine, where the rig's hosts are local users; base64 runs in them,
  such as the wire's ``sh -c 'eval "$(printf %s BASE64 | base64 -d)"'``, are decoded and read
  too);
* no file left on the host holds one (the builder user's whole ``~/.matui``, job dir included);
* nothing matui writes locally holds one (the run's state directory: run.json, the log copies;
  the CLI's stdout and stderr; ``--json``).

The Dockerfile compares each value with its SHA-256, never the value itself: the Dockerfile is
uploaded to the host and BuildKit prints each RUN line in the log, so a literal would leak
there by the test's own doing. BuildKit does print a RUN line with its build args expanded: that
the log shows ``***`` there is the redaction at work.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.rig import Rig
from tests.helpers.sshd import Sshd

pytestmark = pytest.mark.rig

_B64_RUN = re.compile(rb"[A-Za-z0-9+/]{16,}={0,2}")


def sha(value: bytes) -> str:
    return hashlib.sha256(value).hexdigest()


def project(
    tmp_path: Path,
    rig: Rig,
    canaries: dict[str, bytes],
    env_var: str,
    *,
    sshd: Sshd | None = None,
    sleep: int = 3,
) -> Path:
    """One amd64 image on the rig's amd64 host (or a private sshd): a secret-looking build arg,
    a secret from the environment, a multi-line secret from a file; each step checks its value's
    hash, then sleeps so the build is caught running."""
    context = tmp_path / "ctx"
    context.mkdir()
    digest = "| sha256sum | cut -d' ' -f1"
    (context / "Dockerfile").write_text(
        f"""ARG BASE
FROM ${{BASE}}
ARG API_TOKEN
RUN echo run-{secrets.token_hex(6)}
RUN --mount=type=secret,id=NPM_TOKEN \\
    test "$(cat /run/secrets/NPM_TOKEN {digest})" = {sha(canaries["env"])} \\
    && echo secret-env-read-ok && sleep {sleep}
RUN --mount=type=secret,id=pip.conf \\
    test "$(cat /run/secrets/pip.conf {digest})" = {sha(canaries["file"])} \\
    && echo secret-file-read-ok
RUN test "$(printf %s "$API_TOKEN" {digest})" = {sha(canaries["arg"])} \\
    && echo arg-read-ok && sleep {sleep}
"""
    )
    (tmp_path / "pip.conf").write_bytes(canaries["file"])
    config = tmp_path / "matui.toml"
    config.write_text(f"""
[[hosts]]
name = "amd64-1"
arch = "amd64"
address = "127.0.0.1"
port = {sshd.port if sshd else rig.port_amd64}
user = "{rig.user}"
identity = "{rig.key}"
known_hosts = "{sshd.known_hosts if sshd else rig.known_hosts}"

[[images]]
name = "{rig.registry}/secrets-test/app{secrets.token_hex(4)}"
tags = ["1.0"]
context = "ctx"
platforms = ["linux/amd64"]
build_args = {{ BASE = "{rig.base_image}", API_TOKEN = "{canaries["arg"].decode()}" }}
secrets = {{ NPM_TOKEN = "env:{env_var}", "pip.conf" = "file:pip.conf" }}
""")
    return config


def leaks(data: bytes, values: list[bytes]) -> list[bytes]:
    """The values found in ``data``, also inside any base64 run it holds."""
    found = [v for v in values if v in data]
    for run in _B64_RUN.findall(data):
        try:
            decoded = base64.b64decode(run + b"=" * (-len(run) % 4))
        except (binascii.Error, ValueError):
            continue
        found += [v for v in values if v in decoded and v not in found]
    return found


def cmdlines() -> Iterator[tuple[int, bytes]]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                yield int(entry.name), (entry / "cmdline").read_bytes()
            except OSError:
                continue  # gone meanwhile


class ProcessWatch(threading.Thread):
    """Reads every process's arguments, over and over, until told to stop."""

    def __init__(self, values: list[bytes], repo: str) -> None:
        super().__init__(daemon=True)
        self.values = values
        self.repo = repo.encode()
        self.stop = threading.Event()
        self.found: list[tuple[int, bytes, list[bytes]]] = []
        self.scans = 0
        self.scans_during_build = 0

    def run(self) -> None:
        while not self.stop.is_set():
            building = False
            for pid, cmdline in cmdlines():
                if b"buildx\0build\0" in cmdline and self.repo in cmdline:
                    building = True
                if hit := leaks(cmdline, self.values):
                    self.found.append((pid, cmdline, hit))
            self.scans += 1
            self.scans_during_build += building


def files_under(root: Path) -> Iterator[Path]:
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            yield path


def test_values_never_on_argv_nor_left_on_disk_and_the_build_reads_them(
    rig: Rig, tmp_path: Path
) -> None:
    token = secrets.token_hex(8)
    canaries = {
        "arg": f"argcanary{token}".encode(),
        "env": f"envcanary{token}".encode(),
        "file": f"[global]\nindex-url = https://u:filecanary{token}@pypi.example.com\n".encode(),
    }
    values = [canaries["arg"], canaries["env"], f"filecanary{token}".encode()]
    env_var = f"MATUI_TEST_NPM_{token.upper()}"
    config = project(tmp_path, rig, canaries, env_var)
    repo = re.search(r'^name = "(.*/secrets-test/.*)"$', config.read_text(), re.M)
    assert repo is not None
    state = tmp_path / "state"
    watch = ProcessWatch(values, repo.group(1))
    watch.start()
    try:
        build = subprocess.run(
            [sys.executable, "-m", "matui", "build", "--config", str(config), "--json"],
            capture_output=True,
            timeout=600,
            env={
                **os.environ,
                "XDG_STATE_HOME": str(state),
                env_var: canaries["env"].decode(),
            },
        )
    finally:
        watch.stop.set()
        watch.join()
    assert build.returncode == 0, build.stderr.decode()[-3000:]
    doc = json.loads(build.stdout)
    (job,) = doc["jobs"]
    assert job["state"] == "succeeded" and job["digest"]

    # Each step read its value (the echo after each check is in the log)...
    err = build.stderr.decode()
    for word in ("secret-env-read-ok", "secret-file-read-ok", "arg-read-ok"):
        assert word in err
    # ... and BuildKit's expanded RUN line reached matui with the build arg's value blotted out.
    assert re.search(r'RUN test "\$\(printf %s "\*\*\*" \|', err), err[-3000:]

    # No process had a value among its arguments, checked while the build ran.
    assert watch.scans_during_build > 0, "the build was never seen running"
    assert watch.found == []

    # Nothing left on the host: the builder user's whole ~/.matui (the job directory with its
    # log, job.sh, metadata; the image locks), and no private directory left.
    host_job = rig.host_job_dir(doc["run"], job["key"])
    assert host_job.is_dir() and not (host_job / "secrets").exists()
    assert not (host_job / "context").exists()
    matui_home = host_job.parents[2]
    for path in files_under(matui_home):
        assert not leaks(path.read_bytes(), values), path
    assert (host_job / "job.sh").stat().st_mode & 0o077 == 0  # the job's own files are private
    assert b"***" in (host_job / "build.log").read_bytes()

    # Nothing matui wrote locally: the run's record and log copies, stdout, stderr.
    run_files = list(files_under(state))
    assert any(p.name == "run.json" for p in run_files)
    assert any(p.suffix == ".log" for p in run_files), run_files
    for path in run_files:
        assert not leaks(path.read_bytes(), values), path
    assert not leaks(build.stdout, values)
    assert not leaks(build.stderr, values)


def test_a_secret_that_cannot_be_read_stops_the_build_before_anything_starts(
    rig: Rig, tmp_path: Path
) -> None:
    token = secrets.token_hex(8)
    canaries = {"arg": b"a" * 8, "env": b"e" * 8, "file": b"f" * 8}
    env_var = f"MATUI_TEST_UNSET_{token.upper()}"
    config = project(tmp_path, rig, canaries, env_var)
    (tmp_path / "pip.conf").unlink()
    state = tmp_path / "state"
    build = subprocess.run(
        [sys.executable, "-m", "matui", "build", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != env_var} | {"XDG_STATE_HOME": str(state)},
    )
    assert build.returncode != 0
    lines = build.stderr.splitlines()
    [env_line] = [line for line in lines if "images[0].secrets.NPM_TOKEN:" in line]
    assert f"{env_var} is not set" in env_line and f"export {env_var}=" in env_line
    [file_line] = [line for line in lines if 'images[0].secrets."pip.conf":' in line]
    assert "pip.conf does not exist" in file_line and "file:" in file_line
    # Nothing started: no run was recorded (a run is recorded before its first upload).
    assert not list(state.rglob("run.json"))


def canaries_for(token: str) -> tuple[dict[str, bytes], list[bytes]]:
    canaries = {
        "arg": f"argcanary{token}".encode(),
        "env": f"envcanary{token}".encode(),
        "file": f"filecanary{token}\n".encode(),
    }
    return canaries, [canaries["arg"], canaries["env"], f"filecanary{token}".encode()]


def start_and_wait_for(
    config: Path, env: dict[str, str], word: str
) -> tuple[subprocess.Popen[str], list[str]]:
    """``matui build`` running until its output shows ``word`` (the build is then inside the
    step that printed it, its private inputs on the host)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "matui", "build", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    for line in proc.stdout:
        seen.append(line)
        if word in line:
            break
    assert any(word in line for line in seen), "".join(seen)
    return proc, seen


def assert_nothing_left(rig: Rig, run_id: str, state: Path, values: list[bytes]) -> None:
    host_job = rig.host_job_dir(run_id)
    assert not (host_job / "secrets").exists()
    for path in files_under(host_job.parents[2]):
        assert not leaks(path.read_bytes(), values), path
    for path in files_under(state):
        assert not leaks(path.read_bytes(), values), path


def test_lost_then_reattached_the_job_still_removes_them(
    rig: Rig, sshd: Sshd, tmp_path: Path
) -> None:
    """matui dies (kill -9) while the secret's step runs: the detached job removes its private
    inputs itself when it ends; `matui attach` finds the job succeeded and nothing left."""
    canaries, values = canaries_for(secrets.token_hex(8))
    env_var = f"MATUI_TEST_NPM_{secrets.token_hex(4).upper()}"
    config = project(tmp_path, rig, canaries, env_var, sshd=sshd, sleep=6)
    state = tmp_path / "state"
    env = {**os.environ, "XDG_STATE_HOME": str(state), env_var: canaries["env"].decode()}
    proc, seen = start_and_wait_for(config, env, "secret-env-read-ok")
    proc.kill()
    proc.wait(timeout=30)
    [run_line] = [line for line in seen if line.startswith("matui: run ")]
    run_id = run_line.split()[2].rstrip(":")
    assert (rig.host_job_dir(run_id) / "secrets").is_dir()  # the build holds them meanwhile

    attach = subprocess.run(
        [sys.executable, "-m", "matui", "attach", "--config", str(config), "--json"],
        capture_output=True,
        timeout=300,
        env={k: v for k, v in env.items() if k != env_var},  # nothing to read again
    )
    assert attach.returncode == 0, attach.stderr.decode()[-2000:]
    (job,) = json.loads(attach.stdout)["jobs"]
    assert job["state"] == "succeeded"
    assert_nothing_left(rig, run_id, state, values)
    assert not leaks(attach.stdout + attach.stderr + "".join(seen).encode(), values)


def test_a_cancelled_build_leaves_none_of_them(rig: Rig, sshd: Sshd, tmp_path: Path) -> None:
    canaries, values = canaries_for(secrets.token_hex(8))
    env_var = f"MATUI_TEST_NPM_{secrets.token_hex(4).upper()}"
    config = project(tmp_path, rig, canaries, env_var, sshd=sshd, sleep=30)
    state = tmp_path / "state"
    env = {**os.environ, "XDG_STATE_HOME": str(state), env_var: canaries["env"].decode()}
    proc, seen = start_and_wait_for(config, env, "secret-env-read-ok")
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "cancelled" in rest, rest[-2000:]
    [run_line] = [line for line in seen if line.startswith("matui: run ")]
    assert_nothing_left(rig, run_line.split()[2].rstrip(":"), state, values)
