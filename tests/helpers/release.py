"""A release of several images with no rig: one offline run per image
(:func:`tests.helpers.runs.offline_run`) and the config that holds them all, so the dashboard's
release view can be driven by the engine's own state changes and log bytes."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from matui.engine.build.run import BuildRun
from matui.engine.config import Config
from matui.engine.records import JobState
from tests.helpers.runs import offline_run

CLOSED = "127.0.0.1:9"
"""A registry address where nothing listens: a preview that reads it fails at once."""


def offline_release(
    tmp_path: Path,
    names: Sequence[str] = ("api", "web"),
    arches: tuple[str, ...] = ("amd64", "arm64"),
) -> tuple[Config, list[BuildRun]]:
    """One offline run per image ``{CLOSED}/team/NAME`` (hosts ``<arch>-1``), and the config of
    every image (records under ``tmp_path/state``)."""
    runs = [offline_run(tmp_path, f"{CLOSED}/team/{name}", arches) for name in names]
    config = Config(None, runs[0].config.hosts, tuple(run.plan.image for run in runs))
    return config, runs


def set_state(
    run: BuildRun,
    key: str,
    state: JobState,
    detail: str = "",
    *,
    started: float | None = None,
    finished: float | None = None,
    exit_code: int | None = None,
) -> None:
    """Job ``key`` of ``run`` goes to ``state`` the engine's way (recorded, an event emitted);
    ``started``/``finished`` pin its times (wall clock), ``exit_code`` a failure's; a job that
    succeeds gets a made-up digest (the engine's verdict asks for one)."""
    status = run.status[key]
    if state is JobState.SUCCEEDED and status.digest is None:
        status.digest = "sha256:" + hashlib.sha256(f"{run.id} {key}".encode()).hexdigest()
    if started is not None:
        status.started = started
    if exit_code is not None:
        status.exit_code = exit_code
    run._set_state(status, state, detail)
    if finished is not None:
        status.finished = finished
