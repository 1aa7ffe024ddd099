"""The real dashboard in a real terminal: ``matui`` in tmux (120x40, :mod:`tests.helpers.tmux`)
against the rig. Textual draws on stderr, which stays the terminal's. Each test has its own tmux
server (``-L``), config, repository and ``XDG_STATE_HOME``.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.helpers.projects import make_project
from tests.helpers.rig import Rig
from tests.helpers.tmux import BUILD, Tmux
from tests.helpers.tmux import tmux as tmux  # the fixture: one tmux server

pytestmark = pytest.mark.rig


def skopeo_raw(ref: str) -> bytes:
    return subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{ref}"],
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout


DOCKERFILE = """\
ARG BASE
FROM ${BASE}
RUN echo "arch is $(uname -m)"; for i in 1 2 3; do echo "line $i"; done
"""


def test_dashboard_in_tmux_builds_then_publishes_a_verified_two_arch_index(
    rig: Rig, tmp_path: Path, tmux: Tmux
) -> None:
    config, repo = make_project(tmp_path, rig, DOCKERFILE)
    state = tmp_path / "state"
    status = tmp_path / "exit-status"
    tmux.start_matui(config, state, status)  # started, and the hosts probed

    tmux.keys("b")

    def both_built(screen: str) -> bool:
        return (
            "amd64 · succeeded" in screen
            and "arm64 · succeeded" in screen
            and "built: ready to publish" in screen.splitlines()[0]
        )

    screen = tmux.wait(both_built, "both panes' titles to say succeeded", timeout=BUILD)
    # arm64 built under emulation: the hosts table badges the host that emulates it (the
    # pane's title is cut at this width, so the host row is what says it in full).
    assert re.search(r"│ emu-1 +amd64 +amd64 +yes +EMULATED ", screen), screen

    tmux.keys("m")
    screen = tmux.wait(lambda s: "enter push" in s, "the publish confirmation", timeout=60)
    assert f"{repo}:1.0" in screen and "nothing (new tag)" in screen

    tmux.keys("Enter")
    screen = tmux.wait(lambda s: "PUBLISHED AND VERIFIED" in s, "the push", timeout=120)

    # The registry serves the two-arch index, its children the digests the run recorded.
    (record_path,) = (state / "matui" / "runs").glob("*/run.json")
    record = json.loads(record_path.read_text())
    built = {f"linux/{job['arch']}": job["digest"] for job in record["jobs"]}
    assert set(built) == {"linux/amd64", "linux/arm64"}
    assert all(str(d).startswith("sha256:") for d in built.values())
    raw = skopeo_raw(f"{repo}:1.0")
    index = json.loads(raw)
    served = {
        f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
        for m in index["manifests"]
        if m["platform"]["os"] != "unknown"
    }
    assert served == built
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    assert f"index {digest}" in screen  # what the screen says is what the registry serves
    (result,) = record["publishes"][-1]["results"]
    assert result["outcome"] == "verified" and result["digest"] == digest

    # Close the dialog and quit: nothing runs, so q quits at once, exit status 0.
    # (Wait for the dialog to go before q: ESC then q at once would read as alt+q.)
    tmux.keys("Escape")
    screen = tmux.wait(lambda s: "PUBLISHED AND VERIFIED" not in s, "the dialog to close")
    assert "published" in screen.splitlines()[0] and f"index {digest[:19]}" in screen
    tmux.keys("q")
    assert tmux.exit_status(status) == "0", tmux.screen()
