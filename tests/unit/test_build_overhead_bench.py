"""benchmarks/build_overhead.py's own logic: which failures re-run a round, what the output says
about a retry or a missing figure, and the interval it gives the median ratio."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.build_overhead import (
    BuildFailed,
    Series,
    Transient,
    figure,
    hand_failure,
    matui_trouble,
    measure,
    median_interval,
)
from matui.engine.records import JobRecord, JobState, RunRecord

FAILURES = Path(__file__).resolve().parents[1] / "data" / "failures"


def _series() -> list[Series]:
    return [Series("build_overhead", "small", 0), Series("build_overhead_200k", "log", 200_000)]


def _ok(s: Series, number: int) -> None:
    s.matui.append(1.0 + number / 100)
    s.hand.append(1.0)
    s.ratios.append(s.matui[-1] / s.hand[-1])
    s.phases.append((0.1, 0.8, 0.0))


def test_a_transient_failure_reruns_the_round_and_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    failed: set[tuple[str, int]] = set()

    def do_round(s: Series, number: int) -> None:
        if number == 3 and (s.name, number) not in failed:
            failed.add((s.name, number))
            raise Transient("matui arm64 push failed: blob unknown: blob unknown to registry")
        _ok(s, number)

    series = _series()
    measure(series, 5, 2, do_round)
    out = capsys.readouterr().out
    assert "build_overhead round 3 retried (1 of 2): matui arm64 push failed: blob unknown" in out
    for s in series:
        assert s.missing is None and len(s.ratios) == 5
        assert s.retried == [
            "round 3: matui arm64 push failed: blob unknown: blob unknown to registry"
        ]
        assert "1 round(s) retried" in figure(s).detail


def test_a_failure_that_repeats_leaves_the_figure_missing_with_its_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    calls: list[tuple[str, int]] = []

    def do_round(s: Series, number: int) -> None:
        calls.append((s.name, number))
        if s.name == "build_overhead_200k" and number == 2:
            raise Transient("by hand amd64 push failed: digest invalid")
        _ok(s, number)

    series = _series()
    measure(series, 4, 2, do_round)
    out = capsys.readouterr().out
    small, log = series
    # Tried three times, then no more rounds of that build; the other build goes on.
    assert calls.count(("build_overhead_200k", 2)) == 3
    assert ("build_overhead_200k", 3) not in calls
    assert small.missing is None and len(small.ratios) == 4
    assert log.missing is not None and len(log.ratios) == 1
    assert (
        "build_overhead_200k: no figure: round 2 failed 3 times for a registry or infrastructure "
        "reason; the last: by hand amd64 push failed: digest invalid"
    ) in out


def test_a_build_error_is_not_retried() -> None:
    calls: list[int] = []

    def do_round(s: Series, number: int) -> None:
        calls.append(number)
        raise BuildFailed("by hand arm64 exited 1: ERROR: process did not complete")

    (small,) = _series()[:1]
    measure([small], 3, 2, do_round)
    assert calls == [1]
    assert small.missing == (
        "round 1 failed (not transient, not retried): "
        "by hand arm64 exited 1: ERROR: process did not complete"
    )


def test_the_median_interval_is_distribution_free() -> None:
    nine = [1.09, 1.01, 1.05, 0.98, 1.03, 1.02, 1.04, 1.00, 1.06]
    low, high, coverage = median_interval(nine)
    # The 2nd and 8th of nine bound the median with 1 - 2 * 10/512 coverage.
    assert (low, high) == (1.00, 1.06)
    assert coverage == pytest.approx(1 - 2 * 10 / 512)
    low, high, coverage = median_interval([1.2, 1.0, 1.1, 1.3, 0.9])
    assert (low, high) == (0.9, 1.3) and coverage == pytest.approx(1 - 2 / 32)


def test_the_figure_says_by_how_much_it_misses() -> None:
    s = Series("build_overhead", "small", 0)
    for ratio in (1.08, 1.10, 1.12):
        s.matui.append(ratio)
        s.hand.append(1.0)
        s.ratios.append(ratio)
    made = figure(s)
    assert made.ratio == pytest.approx(1.10) and not made.met
    assert "missed by 4.8%" in made.detail and "min-max 1.080-1.120" in made.detail


def test_a_by_hand_push_the_registry_rejected_is_transient(tmp_path: Path) -> None:
    found = hand_failure("arm64", 1, FAILURES / "synthetic_push_blob_unknown.log")
    assert isinstance(found, Transient)
    assert str(found) == "by hand arm64 push failed: ERROR: blob unknown: blob unknown to registry"
    log = tmp_path / "amd64.log"
    log.write_text("#6 0.2 + exit 3\n#6 ERROR: process did not complete successfully\n")
    assert isinstance(hand_failure("amd64", 1, log), BuildFailed)
    log.write_text("ssh: connect to host 127.0.0.1 port 2221: Connection refused\n")
    assert isinstance(hand_failure("amd64", 255, log), Transient)
    # buildx 0.13.1 dropping its status stream on a burst of output: buildx's fault, retried.
    log.write_text(
        "#6 0.188 189074\nERROR: failed to receive status: rpc error: code = Canceled desc = "
        "context canceled\n"
    )
    assert isinstance(hand_failure("amd64", 1, log), Transient)


def _record(tmp_path: Path, **job: object) -> RunRecord:
    return RunRecord.create(
        tmp_path,
        image="127.0.0.1:5000/bench/overhead",
        tags=["1.0"],
        platforms=["linux/arm64"],
        jobs=[
            JobRecord(
                "arm64",
                "arm64",
                "linux/arm64",
                "emu-1",
                "1.0-arm64",
                "127.0.0.1:5000/bench/overhead:1.0-arm64",
                **job,  # type: ignore[arg-type]
            )
        ],
    )


def test_matui_runs_are_judged_by_their_records(tmp_path: Path) -> None:
    assert matui_trouble(_record(tmp_path / "a", state=JobState.SUCCEEDED)) is None
    pushed = {"cause": "registry-push-failed", "error": "blob unknown: blob unknown to registry"}
    reason, transient = matui_trouble(
        _record(tmp_path / "b", state=JobState.FAILED, failure=pushed)
    ) or ("", False)
    assert transient
    assert reason == (
        "matui arm64 failed (registry-push-failed): blob unknown: blob unknown to registry"
    )
    step = {"cause": "build-error", "error": "process did not complete successfully: exit 3"}
    found = matui_trouble(_record(tmp_path / "c", state=JobState.FAILED, failure=step))
    assert found is not None and not found[1]
    died = {
        "cause": "buildx-died",
        "error": "buildx exited with 1; its last output: ERROR: failed to receive status: "
        "rpc error: code = Canceled desc = context canceled",
    }
    found = matui_trouble(_record(tmp_path / "e", state=JobState.FAILED, failure=died))
    assert found is not None and found[1]
    # A success matui's own push retry rescued times the registry: the round is re-run.
    rescued = _record(
        tmp_path / "d", state=JobState.SUCCEEDED, push_attempts=[{"attempt": 1, "of": 3}]
    )
    rescued.log_path("arm64").write_text(
        "#9 ERROR: digest invalid: provided digest did not match\n"
    )
    reason, transient = matui_trouble(rescued) or ("", False)
    assert transient and reason.startswith(
        "matui arm64 push failed (#9 ERROR: digest invalid: provided digest did not match); "
        "matui's own push retry delivered it (1 attempt(s))"
    )
