"""On the rig: a push the registry rejects after the image was built is retried as a push of the
built image (no rebuild), shown in the log, and counted in the record; the job succeeds only with
the digest the registry serves under its arch tag, read back.

The image's repository is on a misbehaving proxy in front of the rig's registry
(:class:`~tests.helpers.registry_proxy.RegistryProxy`), which answers manifest PUTs to it with
400 ``BLOB_UNKNOWN``: what the rig's registry said when two arches pushed one layer at once."""

from __future__ import annotations

import json
import secrets
import signal
from pathlib import Path
from typing import Any

import pytest

from matui.engine.refs import parse_repository
from matui.engine.registry import RegistryClient
from tests.helpers.cli import read_until, run_matui, spawn_matui
from tests.helpers.projects import make_project
from tests.helpers.registry_proxy import RegistryProxy
from tests.helpers.rig import Rig

pytestmark = pytest.mark.rig

DOCKERFILE = """\
ARG BASE
FROM ${BASE}
RUN echo "built on $(uname -m)" > /built
"""


def _project(tmp_path: Path, rig: Rig, proxy: RegistryProxy) -> tuple[Path, str]:
    path = f"push-retry/app{secrets.token_hex(4)}"
    config, _ = make_project(tmp_path, rig, DOCKERFILE, repo=f"{proxy.address}/{path}")
    return config, path


def _jobs(record_dir: Path) -> dict[str, dict[str, Any]]:
    (record,) = record_dir.rglob("run.json")
    return {job["arch"]: job for job in json.loads(record.read_text())["jobs"]}


def test_a_push_rejected_once_is_pushed_again_and_read_back(rig: Rig, tmp_path: Path) -> None:
    with RegistryProxy(rig.registry) as proxy:
        config, path = _project(tmp_path, rig, proxy)
        with proxy.misbehaving(reject_repo=path, reject_puts=1) as rules:
            build = run_matui("build", "--config", config, state=tmp_path / "state")
            assert rules.rejected_puts == 1
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    jobs = _jobs(tmp_path / "state")
    retried = [job for job in jobs.values() if job["push_attempts"]]
    assert len(retried) == 1, jobs  # the one arch whose push the proxy rejected
    job = retried[0]
    (attempt,) = job["push_attempts"]
    assert job["state"] == "succeeded" and job["failure"] is None
    assert attempt["attempt"] == 1 and attempt["exit_code"] == 0 and attempt["ok"] is True
    # What the registry serves under the arch tag, read here on our own, is the job's digest.
    served = RegistryClient().get_manifest_sync(
        parse_repository(f"{rig.registry}/{path}"), job["arch_tag"]
    )
    assert served is not None
    assert job["digest"] == attempt["digest"] == attempt["registry_digest"] == served.digest
    assert any(note.startswith("push retried once") for note in job["notes"]), job["notes"]
    # The pane's and the CLI's line: the retry, in the job's own log, after the rejected push.
    arch = job["arch"]
    out = build.stdout
    assert f"[{arch}] @@matui push retry 1/3 after " in out, out[-3000:]
    assert out.index(f"[{arch}] @@matui push retry 1/3") > out.index("blob unknown")
    # Never a rebuild: the job's log holds one build.
    log = (next((tmp_path / "state").rglob(f"{job['key']}.log"))).read_text()
    assert log.count("#0 building with") == 1


def test_a_push_rejected_every_time_fails_with_the_registry_cause(rig: Rig, tmp_path: Path) -> None:
    with RegistryProxy(rig.registry) as proxy:
        config, path = _project(tmp_path, rig, proxy)
        with proxy.misbehaving(reject_repo=path, reject_puts=-1) as rules:
            build = run_matui("build", "--config", config, "--json", state=tmp_path / "state")
            # Each arch: the build's own push, then three retries.
            assert rules.rejected_puts == 8
    assert build.returncode == 1, build.stderr[-3000:]
    jobs = {job["arch"]: job for job in json.loads(build.stdout)["jobs"]}
    for job in jobs.values():
        assert job["state"] == "failed"
        assert job["failure"]["cause"] == "registry-push-failed"
        assert [a["attempt"] for a in job["push_attempts"]] == [1, 2, 3]
        assert all(
            a["ok"] is False and a["exit_code"] not in (0, None) for a in job["push_attempts"]
        )
        assert "blob unknown" in job["push_attempts"][-1]["error"]
        assert "pushed again 3 times" in job["error"]
    saved = _jobs(tmp_path / "state")  # the record says the same, for the next morning
    assert {arch: job["push_attempts"] for arch, job in saved.items()} == {
        arch: job["push_attempts"] for arch, job in jobs.items()
    }


#: When the test acts: while the job waits for its first push retry, or while that retry's
#: push runs (the proxy holds its manifest PUT for a few seconds), and the rules for each.
MOMENTS = {
    "waiting": ("push retry 1/3 in ", {"reject_puts": -1}),
    "pushing": ("@@matui push retry 1/3 after ", {"reject_puts": 1, "delay_puts": 6.0}),
}


@pytest.mark.parametrize("moment", sorted(MOMENTS))
def test_ctrl_c_during_a_push_retry_stops_the_retries(
    rig: Rig, tmp_path: Path, moment: str
) -> None:
    """Ctrl-C on ``matui build`` cancels: a job waiting for its next push retry makes no more
    (it ends failed, the registry's cause; nothing ran on its host to cancel), and one whose
    retry was pushing ends as its host says (cancelled: the push was stopped). Never a
    success from a cancelled retry, never another retry after the cancel."""
    word, rules = MOMENTS[moment]
    with RegistryProxy(rig.registry) as proxy:
        config, path = _project(tmp_path, rig, proxy)
        with proxy.misbehaving(reject_repo=path, **rules):  # type: ignore[arg-type]
            proc = spawn_matui("build", "--config", config, state=tmp_path / "state")
            seen = read_until(proc, word)
            assert any(word in line for line in seen), "".join(seen)[-3000:]
            (arch,) = {line[1:].partition("]")[0] for line in seen if word in line}
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0, out[-3000:]
    jobs = _jobs(tmp_path / "state")
    job = jobs[arch]
    assert len(job["push_attempts"]) <= 1, job["push_attempts"]
    assert not any(a["ok"] for a in job["push_attempts"])
    if moment == "pushing":
        assert job["state"] == "cancelled", job
        assert job["push_attempts"][0]["error"] == "cancelled"
    else:
        assert job["state"] == "failed", job
        assert job["failure"]["cause"] == "registry-push-failed"
        assert any(n.startswith("push retries stopped by the cancel") for n in job["notes"])
    for other in jobs.values():
        assert other["state"] in ("failed", "cancelled", "succeeded"), other
        assert not any(a["ok"] for a in other["push_attempts"])


@pytest.mark.parametrize("moment", sorted(MOMENTS))
def test_a_push_retry_goes_on_after_matui_died_and_attach_reads_it_back(
    rig: Rig, tmp_path: Path, moment: str
) -> None:
    """matui killed while a job waits for, or runs, a push retry: `matui attach` reattaches
    (to the running push, or to the wait: the record counts the attempts made), and the jobs
    succeed once the registry takes the push, with the digest it serves read back. No
    rebuild."""
    word, rules = MOMENTS[moment]
    with RegistryProxy(rig.registry) as proxy:
        config, path = _project(tmp_path, rig, proxy)
        with proxy.misbehaving(reject_repo=path, **rules):  # type: ignore[arg-type]
            proc = spawn_matui("build", "--config", config, state=tmp_path / "state")
            read_until(proc, word)
            proc.kill()
            proc.wait(timeout=30)
            if moment == "pushing":  # the push goes on without matui; attach follows it
                attach = run_matui(
                    "attach", "--config", config, "--json", state=tmp_path / "state", timeout=300
                )
        if moment == "waiting":  # the registry takes pushes again; attach makes the retry
            attach = run_matui(
                "attach", "--config", config, "--json", state=tmp_path / "state", timeout=300
            )
    assert attach.returncode == 0, attach.stderr[-3000:]
    jobs = json.loads(attach.stdout)["jobs"]
    registry = RegistryClient()
    for job in jobs:
        assert job["state"] == "succeeded", job
        served = registry.get_manifest_sync(
            parse_repository(f"{rig.registry}/{path}"), job["arch_tag"]
        )
        assert served is not None and job["digest"] == served.digest
    retried = [job for job in jobs if job["push_attempts"]]
    assert retried, jobs
    for job in retried:
        (attempt,) = job["push_attempts"]  # the one matui started before it died, or attach's
        assert attempt["ok"] is True and attempt["registry_digest"] == job["digest"]
        log = next((tmp_path / "state").rglob(f"{job['key']}.log")).read_text()
        assert log.count("#0 building with") == 1
        assert log.count("@@matui push retry 1/3 after") == 1


def test_a_read_only_follower_follows_the_owners_push_retries_and_makes_none(
    rig: Rig, tmp_path: Path
) -> None:
    """`matui logs --follow` on a run whose pushes are being retried shows each retry the run's
    owner makes, ends with the run, and pushes nothing itself: the host's log holds the owner's
    three retries per arch, not one more."""
    with RegistryProxy(rig.registry) as proxy:
        config, path = _project(tmp_path, rig, proxy)
        with proxy.misbehaving(reject_repo=path, reject_puts=-1):
            owner = spawn_matui("build", "--config", config, state=tmp_path / "state")
            read_until(owner, "push retry 1/3 in ")
            follower = run_matui(
                "logs", "--config", config, "--follow", state=tmp_path / "state", timeout=300
            )
            out, _ = owner.communicate(timeout=300)
    assert owner.returncode == 1, out[-3000:]
    assert follower.returncode in (0, 1), follower.stderr[-3000:]
    # The follower waited for the owner's pushes; the owner never found one of the follower's.
    assert "the run's owner pushes" in follower.stderr, follower.stderr[-3000:]
    assert "attached to it" not in out
    jobs = _jobs(tmp_path / "state")
    for job in jobs.values():
        assert job["state"] == "failed" and len(job["push_attempts"]) == 3, job
        arch = job["arch"]
        host_log = (rig.host_job_dir(_run_id(tmp_path), job["key"]) / "build.log").read_text()
        assert host_log.count("@@matui push retry ") == 3, host_log[-2000:]
        shown = [line for line in follower.stdout.splitlines() if line.startswith(f"[{arch}]")]
        assert sum("@@matui push retry " in line for line in shown) == 3, shown[-40:]
        assert shown[-1].startswith(f"[{arch}] ERROR: push retry 3/3 failed"), shown[-5:]


def _run_id(tmp_path: Path) -> str:
    (record,) = (tmp_path / "state").rglob("run.json")
    return record.parent.name
