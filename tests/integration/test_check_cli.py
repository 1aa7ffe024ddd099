"""`matui check` end to end: the real CLI against the rig's sshd hosts."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.helpers.cli import run_matui
from tests.helpers.rig import Rig

pytestmark = pytest.mark.rig


def write_config(tmp_path: Path, rig: Rig, hosts: str) -> Path:
    config = tmp_path / "matui.toml"
    config.write_text(
        f'[defaults]\nuser = "{rig.user}"\nidentity = "{rig.key}"\n'
        f'known_hosts = "{rig.known_hosts}"\n\n{hosts}'
    )
    return config


def host(name: str, arch: str, port: int, extra: str = "") -> str:
    return (
        f'[[hosts]]\nname = "{name}"\narch = "{arch}"\n'
        f'address = "127.0.0.1"\nport = {port}\n{extra}\n'
    )


def test_rig_hosts_report_native_amd64_and_exit_0(rig: Rig, tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        rig,
        host("a", "amd64", rig.port_amd64)
        + host("b", "x86_64", rig.port_emu, 'jump = "hop"')
        + host("hop", "amd64", rig.port_bastion),
    )
    result = run_matui("check", "--config", config, "--json", timeout=120)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["flags"] == []
    by_name = {h["name"]: h for h in doc["hosts"]}
    assert set(by_name) == {"a", "b", "hop"}
    for entry in doc["hosts"]:
        assert entry["reachable"] is True
        assert (entry["uname"], entry["native_arch"], entry["arch"]) == ("x86_64", "amd64", "amd64")
        assert entry["docker_version"] and entry["buildx_version"].startswith("0.")
        assert "arm64" in entry["emulation"]
        assert entry["error"] is None
    human = run_matui("check", "--config", config, timeout=120)
    assert human.returncode == 0
    assert "all hosts ready" in human.stdout and "x86_64" in human.stdout


def test_host_declared_arm64_that_is_x86_64_is_flagged_and_exits_1(
    rig: Rig, tmp_path: Path
) -> None:
    config = write_config(tmp_path, rig, host("liar", "arm64", rig.port_amd64))
    result = run_matui("check", "--config", config, "--json", timeout=120)
    assert result.returncode == 1
    (flag,) = json.loads(result.stdout)["flags"]
    assert flag["kind"] == "arch-mismatch" and flag["severity"] == "error"
    assert flag["subject"] == "liar"
    human = run_matui("check", "--config", config, timeout=120)
    assert human.returncode == 1 and "MISMATCH" in human.stdout


def test_unknown_host_key_is_refused_with_fingerprint_and_nothing_runs(
    rig: Rig, tmp_path: Path
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    config = write_config(
        tmp_path, rig, host("new", "amd64", rig.port_amd64, f'known_hosts = "{empty}"')
    )
    fingerprint = subprocess.run(
        ["ssh-keygen", "-lf", str(rig.sshd_dir("amd64") / "ssh_host_ed25519_key.pub")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[1]
    log = rig.sshd_dir("amd64") / "sshd.log"
    log_before = log.stat().st_size
    result = run_matui("check", "--config", config, "--json", timeout=120)
    assert result.returncode == 1
    (entry,) = json.loads(result.stdout)["hosts"]
    assert entry["reachable"] is False
    assert fingerprint in entry["error"]
    assert "ssh-keyscan" in entry["error"] and str(rig.port_amd64) in entry["error"]
    # Nothing ran: the server never saw a login for this attempt.
    assert "Accepted publickey" not in log.read_text()[log_before:]


def test_config_error_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "matui.toml"
    config.write_text('[[hosts]]\nname = "x"\narch = "arm65"\naddress = "h"\n')
    result = run_matui("check", "--config", config, timeout=120)
    assert result.returncode == 2
    assert 'hosts[0].arch: "arm65" is not an architecture' in result.stderr
    assert "Traceback" not in result.stderr
