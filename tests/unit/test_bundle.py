"""`matui logs` and `matui bundle` on a run staged in tmp: a recorded buildx log read back one step
or the failing step, and the bundle's files with secret-looking build-arg values blotted out."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from matui.engine.arch import Platform
from matui.engine.build.progress import step_of
from matui.engine.bundle import (
    BundleExists,
    LogSelectionError,
    Redactor,
    select_logs,
    stored_lines,
    write_bundle,
)
from matui.engine.config import ImageConfig
from matui.engine.probe import HostProbe
from matui.engine.records import JobState, RunRecord
from tests.helpers.cli import run_matui
from tests.helpers.records import job_record

SECRET = "tok-9f8e7d6c5b4a"
DEFAULT_SECRET = "dflt-1a2b3c4d"

# A real buildx 0.13.1 plain-progress log of a failed RUN (trimmed), with a progress bar (\r),
# a colour sequence and invalid UTF-8 the one decoder makes inert.
ARM64_LOG = (
    b'#0 building with "default" instance using docker driver\n'
    b"\n"
    b"#1 [internal] load build definition from Dockerfile\n"
    b"#1 transferring dockerfile: 120B done\n"
    b"#1 DONE 0.0s\n"
    b"\n"
    b"#5 [1/3] FROM docker.io/library/busybox\n"
    b"#5 DONE 0.1s\n"
    b"\n"
    b"#6 [2/3] RUN echo hello\n"
    b"#6 0.210 hello\n"
    b"#6 0.211 10%\r50%\r100%\n"
    b"#6 DONE 0.3s\n"
    b"\n"
    b"#7 [3/3] RUN echo broken \xff; echo \x1b[31mred\x1b[0m; exit 3\n"
    b"#7 0.301 broken \xff\n"
    b"#7 0.302 \x1b[31mred\x1b[0m\n"
    b'#7 ERROR: process "/bin/sh -c exit 3" did not complete successfully: exit code: 3\n'
    b"------\n"
    b" > [3/3] RUN exit 3:\n"
    b"------\n"
    b'ERROR: failed to solve: process "/bin/sh -c exit 3" did not complete successfully: '
    b"exit code: 3\n"
)
AMD64_LOG = b"#6 [2/3] RUN echo hello\n#6 0.2 hello\n#6 DONE 0.3s\n"


def _staged(tmp_path: Path) -> tuple[RunRecord, ImageConfig]:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(
        f"ARG BASE=busybox\nARG NPM_TOKEN={DEFAULT_SECRET} VERSION=1.0\nFROM ${{BASE}}\n"
        "RUN echo hello\n"
    )
    record = RunRecord.create(
        tmp_path / "state" / "matui",
        image="r.example/app",
        tags=["1.0"],
        platforms=["linux/amd64", "linux/arm64"],
        jobs=[
            job_record(
                "amd64", state=JobState.SUCCEEDED, digest="sha256:" + "a" * 64, seconds=12.5
            ),
            job_record(
                "arm64",
                state=JobState.FAILED,
                exit_code=3,
                failing_step="#7 [3/3] RUN echo broken; exit 3",
                seconds=75.0,
                # A value that should never be here, but a bundle must not carry it if it is.
                notes=[f"echoed {SECRET}"],
            ),
        ],
        context=str(context),
        hosts=[HostProbe("amd64-1", "amd64", True, native_arch="amd64")],
    )
    record.state = record.state.FAILED
    record.save()
    record.log_path("arm64").write_bytes(ARM64_LOG)
    record.log_path("amd64").write_bytes(AMD64_LOG + f"#6 0.3 token {SECRET}\n".encode())
    record.save_source("amd64", "sha256:" + "b" * 64, {"Dockerfile": "sha256:" + "c" * 64}, 1.0)
    image = ImageConfig(
        name="r.example/app",
        tags=("1.0",),
        context=context,
        platforms=(Platform.parse("linux/amd64"), Platform.parse("linux/arm64")),
        build_args={"BASE": "busybox", "NPM_TOKEN": SECRET},
    )
    return RunRecord.load(record.dir), image


def test_step_of_reads_the_prefix_the_parser_reads() -> None:
    assert step_of("#7 0.301 broken") == 7
    assert step_of("#12 [3/3] RUN exit 3") == 12
    assert step_of("#7") == 7
    assert step_of("ERROR: failed to solve") is None
    assert step_of("#x 1") is None
    assert step_of("") is None


def test_stored_lines_are_decoded_once_and_filtered_by_step(tmp_path: Path) -> None:
    log = tmp_path / "arm64.log"
    log.write_bytes(ARM64_LOG)
    lines = list(stored_lines(log))
    assert lines[0].startswith("#0 building with")
    assert "#6 0.211 100%" in lines  # the progress bar's last state, prefix kept
    assert "#7 0.302 red" in lines  # colours gone
    assert "#7 0.301 broken \ufffd" in lines  # invalid UTF-8 replaced
    assert not any("\x1b" in line for line in lines)
    step7 = list(stored_lines(log, step=7))
    assert step7[0] == "#7 [3/3] RUN echo broken \ufffd; echo red; exit 3"
    assert all(line.startswith("#7 ") for line in step7)
    assert len(step7) == 4
    assert list(stored_lines(tmp_path / "missing.log")) == []


def test_stored_lines_across_read_blocks(tmp_path: Path) -> None:
    """A log bigger than one read block: every line once, none cut at a block edge."""
    log = tmp_path / "big.log"
    lines = [f"#3 0.{i:06d} {'x' * (i % 97)}" for i in range(40_000)]
    log.write_bytes(("\n".join(lines) + "\npartial").encode())
    assert list(stored_lines(log)) == [*lines, "partial"]


def test_select_logs_failed_and_arch(tmp_path: Path) -> None:
    record, _ = _staged(tmp_path)
    failed = select_logs(record, failed=True)
    assert [p.job.arch for p in failed] == ["arm64"]
    assert failed[0].step == 7
    assert list(failed[0].lines())[-1].startswith("#7 ERROR: process")
    assert [p.job.arch for p in select_logs(record, arch="linux/amd64")] == ["amd64"]
    with pytest.raises(LogSelectionError, match=r"--arch s390x: .* has: amd64, arm64"):
        select_logs(record, arch="s390x")
    with pytest.raises(LogSelectionError, match="--failed: no job"):
        select_logs(record, arch="amd64", failed=True)


def test_redactor_blots_values_and_secret_arg_defaults() -> None:
    redactor = Redactor({"NPM_TOKEN": SECRET, "VERSION": "1.0.0", "DB_PASSWORD": "abc"})
    assert redactor.names == ["DB_PASSWORD", "NPM_TOKEN"]
    assert redactor.text(f"x {SECRET} 1.0.0") == "x *** 1.0.0"
    text = redactor.dockerfile(
        'ARG NPM_TOKEN=abc123 VERSION=2\n  arg api_key="k e y"\nARG PLAIN=1\nRUN x=NPM_TOKEN=1\n'
    )
    assert (
        text == "ARG NPM_TOKEN=*** VERSION=2\n  arg api_key=***\nARG PLAIN=1\nRUN x=NPM_TOKEN=1\n"
    )


def _extract(path: Path) -> dict[str, str]:
    with tarfile.open(path) as tar:
        out = {}
        for member in tar.getmembers():
            data = tar.extractfile(member)
            assert data is not None
            out[member.name] = data.read().decode()
        return out


def test_bundle_holds_what_is_promised_and_no_secret(tmp_path: Path) -> None:
    record, image = _staged(tmp_path)
    out = tmp_path / "b.tar.gz"
    report = write_bundle(record, out, image=image)
    top = f"matui-{record.id}/"
    files = _extract(out)
    assert {name.removeprefix(top) for name in files} == {
        "README.txt",
        "SUMMARY.txt",
        "run.json",
        "hosts.json",
        "plan.json",
        "flags.json",
        "logs/amd64.log",
        "logs/arm64.log",
        "sources/amd64.source.json",
        "Dockerfile",
    }
    assert sorted(files) == sorted(report.members)
    assert report.redacted == ["NPM_TOKEN"]
    for name, text in files.items():
        assert SECRET not in text, name
        assert DEFAULT_SECRET not in text, name
    assert "ARG NPM_TOKEN=*** VERSION=1.0" in files[top + "Dockerfile"]
    assert "#6 0.3 token ***" in files[top + "logs/amd64.log"]
    assert "\x1b" not in files[top + "logs/arm64.log"]
    summary = files[top + "SUMMARY.txt"]
    assert "verdict: failed: arm64 failed" in summary
    assert "arm64: failed exit 3 on arm64-1 in 1m15s at #7 [3/3] RUN echo broken; exit 3" in summary
    assert "amd64: succeeded on amd64-1 in 12.5s" in summary
    assert json.loads(files[top + "run.json"])["run"] == record.id
    assert json.loads(files[top + "hosts.json"])[0]["name"] == "amd64-1"
    plan = json.loads(files[top + "plan.json"])
    assert [j["host"] for j in plan["jobs"]] == ["amd64-1", "arm64-1"]
    assert (out.stat().st_mode & 0o777) == 0o600


def test_bundle_says_when_the_dockerfile_is_gone_and_never_overwrites(tmp_path: Path) -> None:
    record, image = _staged(tmp_path)
    (tmp_path / "ctx" / "Dockerfile").unlink()
    out = tmp_path / "b.tar.gz"
    write_bundle(record, out, image=image)
    readme = _extract(out)[f"matui-{record.id}/README.txt"]
    assert "Dockerfile: not included:" in readme
    before = out.read_bytes()
    with pytest.raises(BundleExists, match="exists; name it with -o"):
        write_bundle(record, out, image=image)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".b.tar.gz")] == []
    write_bundle(record, out, image=image, overwrite=True)


def test_cli_logs_and_bundle_on_a_staged_run(tmp_path: Path) -> None:
    record, _ = _staged(tmp_path)
    step = run_matui("logs", "--step", "7", state=tmp_path / "state", cwd=tmp_path, timeout=60)
    assert step.returncode == 0, step.stderr
    assert (
        step.stdout.splitlines()[0] == "[arm64] #7 [3/3] RUN echo broken \ufffd; echo red; exit 3"
    )
    assert all(line.startswith("[arm64] #7 ") for line in step.stdout.splitlines())
    failed = run_matui(
        "logs",
        "--failed",
        "--run",
        record.id[:10],
        state=tmp_path / "state",
        cwd=tmp_path,
        timeout=60,
    )
    # One arch printed: no prefix.
    assert failed.stdout == step.stdout.replace("[arm64] ", "")
    one = run_matui("logs", "--arch", "amd64", state=tmp_path / "state", cwd=tmp_path, timeout=60)
    assert one.stdout.startswith("#6 [2/3] RUN echo hello\n")
    bad = run_matui("logs", "--arch", "mips", state=tmp_path / "state", cwd=tmp_path, timeout=60)
    assert bad.returncode == 2 and "--arch mips:" in bad.stderr
    both = run_matui(
        "logs", "--step", "1", "--failed", state=tmp_path / "state", cwd=tmp_path, timeout=60
    )
    assert both.returncode == 2

    made = run_matui("bundle", state=tmp_path / "state", cwd=tmp_path, timeout=60)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / f"matui-{record.id}.tar.gz").is_file()
    again = run_matui("bundle", state=tmp_path / "state", cwd=tmp_path, timeout=60)
    assert again.returncode == 2 and "exists; name it with -o" in again.stderr
    explicit = run_matui(
        "bundle",
        "-o",
        f"matui-{record.id}.tar.gz",
        state=tmp_path / "state",
        cwd=tmp_path,
        timeout=60,
    )
    assert explicit.returncode == 0, explicit.stderr


def test_cli_runs_json_is_the_typed_record(tmp_path: Path) -> None:
    record, _ = _staged(tmp_path)
    listed = run_matui("runs", "--json", state=tmp_path / "state", cwd=tmp_path, timeout=60)
    assert listed.returncode == 0, listed.stderr
    expected = json.loads(json.dumps(record.to_json(), default=str))
    [listed_run] = json.loads(listed.stdout)["runs"]
    # the typed record, and beside it what the history makes of it (engine/history.py)
    assert {k: v for k, v in listed_run.items() if k in expected} == expected
    assert listed_run["verdict"]["kind"] == str(record.verdict().kind)


def test_cli_follow_never_launches_a_job(tmp_path: Path) -> None:
    """A run still going with a job not launched yet: following would launch it, so no."""
    record, _ = _staged(tmp_path)
    record.update(state="running")
    record.update_job("arm64", state="uploading", pid=None)
    follow = run_matui("logs", "--follow", state=tmp_path / "state", cwd=tmp_path, timeout=60)
    assert follow.returncode == 1
    assert "arm64 not launched on its host yet" in follow.stderr
    assert follow.stdout == ""
    finished = run_matui(
        "logs", "--follow", "--arch", "amd64", state=tmp_path / "state", cwd=tmp_path, timeout=60
    )
    assert finished.returncode == 1  # the run as a whole is still being launched
