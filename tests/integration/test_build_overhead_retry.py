"""On the rig: benchmarks/build_overhead.py survives a registry that rejects a push (a round is
run again and the output says why) and reports a failure that repeats as a missing figure with
its reason, not a traceback. The registry is a misbehaving proxy in front of the rig's
(:class:`~tests.helpers.registry_proxy.RegistryProxy`) answering manifest PUTs with 400
``BLOB_UNKNOWN``, what the rig's registry said when two arches pushed one layer at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.build_overhead import REPOSITORY
from tests.helpers.registry_proxy import RegistryProxy
from tests.helpers.rig import Rig

pytestmark = pytest.mark.rig

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "build_overhead.py"


def _bench(rig: Rig, proxy: RegistryProxy, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MATUI_RIG_DIR": str(rig.dir), "DOCKER_HOST": rig.docker_host}
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--registry", proxy.address, "--only", "small", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )


def test_a_rejected_push_reruns_the_round_and_the_figure_is_printed(rig: Rig) -> None:
    with (
        RegistryProxy(rig.registry) as proxy,
        proxy.misbehaving(reject_repo=REPOSITORY, reject_puts=1) as rules,
    ):
        out = _bench(rig, proxy, "--rounds", "1", "--retries", "1")
        assert rules.rejected_puts == 1
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    # Round 1 runs matui first: its first push was rejected and its own push retry delivered
    # the image, which times the registry: the round was run again, and says why.
    retried = [ln for ln in out.stdout.splitlines() if "round 1 retried" in ln]
    assert len(retried) == 1, out.stdout
    assert retried[0].startswith("build_overhead round 1 retried (1 of 1): matui ")
    assert "blob unknown" in retried[0] and "push retry delivered it" in retried[0]
    assert any(ln.startswith("@@figure ") for ln in out.stdout.splitlines()), out.stdout
    assert "1 round(s) retried" in out.stdout


def test_a_push_rejected_every_time_leaves_the_figure_missing_with_its_reason(rig: Rig) -> None:
    with (
        RegistryProxy(rig.registry) as proxy,
        proxy.misbehaving(reject_repo=REPOSITORY, reject_puts=-1),
    ):
        # matui pushes again (its own push retries) before its job fails: each try is slow.
        out = _bench(rig, proxy, "--rounds", "1", "--retries", "1")
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    assert not any(ln.startswith("@@figure ") for ln in out.stdout.splitlines()), out.stdout
    assert "build_overhead round 1 retried (1 of 1): matui " in out.stdout, out.stdout
    (missing,) = [ln for ln in out.stdout.splitlines() if ": no figure: " in ln]
    assert missing.startswith(
        "build_overhead: no figure: round 1 failed 2 times for a registry or infrastructure "
        "reason; the last: matui "
    ), missing
    assert "failed (registry-push-failed): " in missing, missing
