"""``matui compare`` on a run staged in a private state directory (no host dialled): the table
with * on the step where the arches part, the timeline, a step chosen by number or by name,
the JSON document, and one-line errors for a bad --step or --width."""

from __future__ import annotations

import json
from pathlib import Path

from matui.engine.records import JobState, RunRecord, state_dir
from tests.helpers.cli import run_matui
from tests.helpers.records import job_record, staged_run

REPO = "registry.example/team/app"

COMMON = [
    '#0 building with "default" instance using docker driver',
    "",
    "#1 [2/3] RUN ./configure",
    "#1 0.100 checking for cc... cc",
    "#1 DONE 0.4s",
    "",
    "#2 [3/3] RUN make",
    "#2 0.300 cc -c main.c",
]
LOGS = {
    "amd64": [
        *COMMON,
        "#2 0.900 linked on x86_64",
        "#2 DONE 1.0s",
        "",
        "#3 exporting to image",
        "#3 DONE 0.1s",
    ],
    "arm64": [
        *COMMON,
        "#2 2.100 main.c:3: error: no simd here",
        "#2 ERROR: executor failed running [/bin/sh -c make]: exit code: 2",
    ],
}


def stage(tmp_path: Path) -> RunRecord:
    root = state_dir({"XDG_STATE_HOME": str(tmp_path / "state")})
    jobs = [
        job_record(
            arch,
            REPO,
            state=JobState.SUCCEEDED if arch == "amd64" else JobState.FAILED,
            seconds=2.0,
        )
        for arch in LOGS
    ]
    return staged_run(root, REPO, jobs, LOGS)


def matui(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    done = run_matui("compare", *args, state=tmp_path / "state", cwd=tmp_path, timeout=60)
    return done.returncode, done.stdout, done.stderr


def test_table_and_timeline(tmp_path: Path) -> None:
    record = stage(tmp_path)
    code, out, _ = matui(tmp_path, "--width", "80")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"run {record.id}: amd64 succeeded 2.0s · arm64 failed 2.0s"
    rows = [line for line in lines if line[2:4] == "#2" or line[2:4] == "#1" or "#3" in line]
    # 80 columns: mark and #N (7), the name (45), two arches (14 each).
    assert rows[:3] == [
        "  #1   " + "[2/3] RUN ./configure".ljust(45) + "  done 0.4s     done 0.4s",
        "* #2   " + "[3/3] RUN make".ljust(45) + "  done 1.0s     error 2.1s",
        "  #3   " + "exporting to image".ljust(45) + "  done 0.1s     not reached",
    ]
    assert "* parts ways at #2 [3/3] RUN make: arm64 error 2.1s; amd64 done 1.0s" in lines
    estimated = "estimated from durations: amd64, arm64"
    assert f"timeline: 0 to 2.5s, one axis for every arch; {estimated}" in lines
    bars = [line for line in lines if line.startswith("  #") and line.endswith("|")]
    assert len(bars) == 6 and all(len(line) == 80 for line in bars)


def test_a_step_by_number_or_name_and_json(tmp_path: Path) -> None:
    stage(tmp_path)
    code, by_number, _ = matui(tmp_path, "--step", "2", "--width", "100")
    assert code == 0
    code, by_name, _ = matui(tmp_path, "--step", "RUN make", "--width", "100")
    assert code == 0 and by_name == by_number
    lines = by_number.splitlines()
    assert lines[0] == "#2 [3/3] RUN make"
    assert lines[1].split("│")[0].strip() == "amd64 #2"
    columns = [line.split(" │ ") for line in lines[1:]]
    assert all(len(parts) == 2 for parts in columns)
    assert any("0.900 linked on x86_64" in left for left, _ in columns)
    assert any("no simd here" in right for _, right in columns)
    # Narrower: a long line is wrapped in its column, never cut.
    code, narrow, _ = matui(tmp_path, "--step", "2", "--width", "60")
    right = "".join(line.split(" │ ")[1] for line in narrow.splitlines()[1:])
    assert "2.100 main.c:3: error: no simd here" in right

    code, out, _ = matui(tmp_path, "--json")
    data = json.loads(out)
    assert data["first_divergence"]["number"] == 2
    assert data["timeline"]["width"] == 40
    code, out, _ = matui(tmp_path, "--json", "--step", "configure")
    step = json.loads(out)
    assert [o["arch"] for o in step["outputs"]] == ["amd64", "arm64"]
    assert step["outputs"][1]["lines"][1] == "0.100 checking for cc... cc"


def test_bad_input_is_one_clear_line(tmp_path: Path) -> None:
    stage(tmp_path)
    code, _, err = matui(tmp_path, "--step", "RUN")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("matui: --step RUN: matches 2 steps (#1 [2/3] RUN ./configure;")
    code, _, err = matui(tmp_path, "--step", "99")
    assert code == 2 and "no such step" in err and err.count("\n") == 1
    code, _, err = matui(tmp_path, "--width", "5")
    assert code == 2 and err == "matui: --width 5: give a number of columns from 10 to 1000\n"
    code, _, err = matui(tmp_path, "--run", "nope")
    assert code == 2 and "no run 'nope'" in err
