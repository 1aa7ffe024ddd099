"""source_mismatch_flags: arches of one index built from different sources are an ERROR that
names the files that differ; the explicit override makes it a WARNING that says so."""

from __future__ import annotations

import time

from matui.engine.flags.model import FlagKind, Severity, has_errors
from matui.engine.flags.sources import (
    JobSource,
    override_mixed_sources,
    source_changes,
    source_mismatch_flags,
)

T0 = time.mktime((2026, 12, 1, 12, 1, 5, 0, 0, -1))
OLD = {"Dockerfile": "sha256:aa", "app.py": "sha256:bb"}
NEW = {"Dockerfile": "sha256:cc", "app.py": "sha256:bb"}


def test_same_source_no_flag() -> None:
    sources = [
        JobSource("amd64", "sha256:1", T0, OLD),
        JobSource("arm64", "sha256:1", T0 + 400, OLD),
    ]
    assert source_mismatch_flags(sources) == []


def test_unrecorded_sources_are_not_compared() -> None:
    sources = [JobSource("amd64", None), JobSource("arm64", "sha256:1", T0, OLD)]
    assert source_mismatch_flags(sources) == []


def test_dockerfile_edit_is_an_error_naming_it_and_both_times() -> None:
    sources = [
        JobSource("arm64", "sha256:2", T0 + 395, NEW),
        JobSource("amd64", "sha256:1", T0, OLD),
    ]
    [flag] = source_mismatch_flags(sources)
    assert flag.kind is FlagKind.SOURCE_MISMATCH
    assert flag.severity is Severity.ERROR
    assert flag.subject == "arm64"
    assert flag.message.startswith(
        "arches built from different sources: Dockerfile (changed) differs between "
        "amd64 (built 12:01:05) and arm64 (built 12:07:40); "
    )
    assert "--allow-mixed-sources" in flag.message
    assert flag.evidence["changed"] == ["Dockerfile"]
    assert flag.evidence["sources"] == {"arm64": "sha256:2", "amd64": "sha256:1"}


def test_added_removed_and_more_than_five() -> None:
    before = {f"f{i}": "sha256:0" for i in range(8)} | {"gone": "sha256:9"}
    after = {f"f{i}": "sha256:1" for i in range(8)} | {"new": "sha256:9"}
    assert source_changes(before, after)[-2:] == [("gone", "removed"), ("new", "added")]
    [flag] = source_mismatch_flags(
        [JobSource("amd64", "sha256:a", T0, before), JobSource("arm64", "sha256:b", T0 + 1, after)]
    )
    assert "f0 (changed), f1 (changed), f2 (changed), f3 (changed), f4 (changed) +5 more" in (
        flag.message
    )
    assert flag.evidence["added"] == ["new"] and flag.evidence["removed"] == ["gone"]


def test_three_arches_two_sources_groups_them() -> None:
    sources = [
        JobSource("amd64", "sha256:1", T0, OLD),
        JobSource("arm64", "sha256:2", T0 + 60, NEW),
        JobSource("riscv64", "sha256:2", T0 + 61, NEW),
    ]
    [flag] = source_mismatch_flags(sources)
    assert flag.subject == "arm64+riscv64"
    assert "between amd64 (built 12:01:05) and arm64+riscv64 (built 12:02:05)" in flag.message


def test_manifest_missing_still_an_error() -> None:
    sources = [JobSource("amd64", "sha256:1", T0), JobSource("arm64", "sha256:2", T0 + 1)]
    [flag] = source_mismatch_flags(sources)
    assert flag.severity is Severity.ERROR
    assert "which files is not recorded" in flag.message


def test_override_turns_it_into_a_warning_that_says_so() -> None:
    flags = source_mismatch_flags(
        [JobSource("amd64", "sha256:1", T0, OLD), JobSource("arm64", "sha256:2", T0 + 1, NEW)]
    )
    allowed = override_mixed_sources(flags)
    assert has_errors(flags) and not has_errors(allowed)
    assert allowed[0].message.startswith("overridden with --allow-mixed-sources: arches built")
