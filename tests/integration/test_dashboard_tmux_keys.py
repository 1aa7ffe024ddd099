"""Keys typed after ``/`` in one burst, in a real terminal: the real dashboard in tmux, after a
real build on the rig, gets ``/sha256`` and ``/error`` each as ONE ``send-keys`` string (what a
paste or a laggy SSH link delivers). Every letter lands in the search box; none runs as a
command (``s`` would save a file in the app's directory, ``h`` open the hosts screen, ``e`` jump,
``r`` retry the build).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers.projects import project
from tests.helpers.rig import Rig
from tests.helpers.sshd import Sshd
from tests.helpers.tmux import BUILD, Tmux
from tests.helpers.tmux import tmux as tmux  # the fixture

pytestmark = pytest.mark.rig


def search_box(screen: str) -> str | None:
    """The text in the search box (its placeholder when empty), None when it is closed. The
    box is the row drawn between Textual's tall border halves: ``▊  text  ▎``."""
    for line in screen.splitlines():
        row = re.fullmatch(r"▊ +(.*?) *▎ *", line)
        if row and not set(row.group(1)) & set("▔▁"):
            return row.group(1)
    return None


def test_a_burst_after_slash_goes_into_the_search_box_in_tmux(
    rig: Rig, sshd: Sshd, tmp_path: Path, tmux: Tmux
) -> None:
    config = project(tmp_path, rig, sshd, quick=True)
    workdir = tmp_path / "cwd"  # where s would save the focused pane's log
    workdir.mkdir()
    status = tmp_path / "exit-status"
    tmux.start_matui(config, tmp_path / "state", status, cwd=workdir)
    tmux.keys("b")
    built = tmux.wait(
        lambda s: "amd64 · succeeded" in s and "built: ready to publish" in s.splitlines()[0],
        "the build",
        timeout=BUILD,
    )
    title = built.splitlines()[0]

    tmux.keys("/sha256")  # one string: one burst
    screen = tmux.wait(lambda s: search_box(s) == "sha256", "sha256 in the search box")
    assert not list(workdir.iterdir()), "s saved a file"
    assert "Every host" not in screen and "Hosts ─" in screen  # h opened no hosts screen
    assert screen.splitlines()[0] == title and "amd64 · succeeded" in screen

    tmux.keys("Escape")
    tmux.wait(lambda s: search_box(s) is None, "the search box to close")
    tmux.keys("/error")
    screen = tmux.wait(lambda s: search_box(s) == "error", "error in the search box")
    assert "amd64 · succeeded" in screen and "queued" not in screen  # r retried nothing
    assert "built: ready to publish" in screen.splitlines()[0]
    assert not list(workdir.iterdir())

    tmux.keys("Enter")  # the search runs; the box closes
    tmux.wait(lambda s: search_box(s) is None, "the search to run")
    tmux.keys("q")
    assert tmux.exit_status(status) == "0", tmux.screen()
