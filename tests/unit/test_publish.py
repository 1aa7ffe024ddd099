"""The pure parts of publishing: whether a tag already serves a run's index, what became of a
tag whose push failed, buildx's answer in one line, the report's one line, and the preview and
report as the CLI and the dashboard lay them out. The rig tests (tests/integration/test_publish.py,
tests/ui/test_publish_rig.py) drive the same code against a real registry and buildx."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from matui.cli import format_preview, format_report
from matui.engine.arch import Platform
from matui.engine.builders import BY_DIGEST
from matui.engine.flags import Change, Flag, FlagKind, PlatformChange, Severity, index_diff
from matui.engine.plan import IndexPlan, IndexSource
from matui.engine.publish import (
    PublishPreview,
    PublishReport,
    TagPreview,
    after_failed_push,
    buildx_answer,
    failure_line,
    index_problems,
    one_line,
    plan_index,
    preview_publish,
    publish,
    resolve_sources,
)
from matui.engine.records import JobRecord, JobState, RunRecord, TagOutcome, TagResult
from matui.engine.refs import parse_repository
from matui.engine.registry import (
    MEDIA_DOCKER_LIST,
    MEDIA_DOCKER_MANIFEST,
    IndexEntry,
    Manifest,
    RegistryClient,
)
from matui.ui.publish import render_preview, render_report
from tests.helpers.fake_registry import FakeRegistry
from tests.helpers.records import job_record

REPO = parse_repository("r.example/team/app")
AMD = "sha256:" + "a" * 64
ARM = "sha256:" + "b" * 64
OTHER = "sha256:" + "c" * 64
INDEX = "sha256:" + "d" * 64
PLAN = IndexPlan(
    REPO,
    ("1.0", "latest"),
    (
        IndexSource(Platform.parse("linux/amd64"), AMD, REPO.digest(AMD)),
        IndexSource(Platform.parse("linux/arm64"), ARM, REPO.digest(ARM)),
    ),
)


def entry(platform: str | None, digest: str, *, attestation: bool = False) -> IndexEntry:
    return IndexEntry(
        digest,
        MEDIA_DOCKER_MANIFEST,
        Platform.parse(platform) if platform else None,
        527,
        attestation,
        platform_text=platform or "unknown/unknown",
    )


def index(*entries: IndexEntry, digest: str = INDEX) -> Manifest:
    return Manifest(digest, MEDIA_DOCKER_LIST, b"{}", tuple(entries), None)


SERVED = index(entry("linux/amd64", AMD), entry("linux/arm64", ARM))


def job(arch: str, **values: object) -> JobRecord:
    return job_record(
        arch,
        REPO,
        **values,
    )


def record(tmp_path: Path, *jobs: JobRecord) -> RunRecord:
    return RunRecord.create(
        tmp_path,
        image=str(REPO),
        tags=["1.0", "latest"],
        platforms=["linux/amd64", "linux/arm64"],
        jobs=list(jobs),
        run_id="20261201-000000-abcdef",
    )


# -- does a tag already serve the index? ---------------------------------------------------------


def test_an_index_of_exactly_the_built_digests_serves_the_plan() -> None:
    assert index_problems(PLAN, SERVED) == []
    # Attestations are not platforms; order does not matter.
    attested = index(
        entry("linux/arm64", ARM), entry(None, OTHER, attestation=True), entry("linux/amd64", AMD)
    )
    assert index_problems(PLAN, attested) == []


@pytest.mark.parametrize(
    ("manifest", "problem"),
    [
        (None, "it does not exist"),
        (
            Manifest(AMD, MEDIA_DOCKER_MANIFEST, b"{}", (), OTHER),
            f"it is a single-arch manifest ({MEDIA_DOCKER_MANIFEST}), not an index",
        ),
        (index(entry("linux/amd64", AMD)), "linux/arm64 is missing"),
        (
            index(entry("linux/amd64", AMD), entry("linux/arm64", OTHER)),
            f"linux/arm64 serves {OTHER} but the build made {ARM}",
        ),
        (
            index(
                entry("linux/amd64", AMD), entry("linux/arm64", ARM), entry("linux/s390x", OTHER)
            ),
            "linux/s390x is served but was not built in this run",
        ),
        (
            index(entry("linux/amd64", AMD), entry("linux/amd64", AMD), entry("linux/arm64", ARM)),
            "linux/amd64 is listed twice",
        ),
    ],
)
def test_anything_else_at_the_tag_does_not(manifest: Manifest | None, problem: str) -> None:
    assert index_problems(PLAN, manifest) == [problem]


# -- a tag whose push failed ----------------------------------------------------------------------


def test_a_failed_push_that_left_the_tag_alone_is_refused_with_the_answer() -> None:
    result = after_failed_push(PLAN, "latest", None, None, "403 Forbidden")
    assert (result.outcome, result.error, result.before, result.digest) == (
        TagOutcome.REFUSED,
        "403 Forbidden",
        None,
        None,
    )
    old = index(entry("linux/amd64", OTHER), digest=OTHER)
    result = after_failed_push(PLAN, "latest", OTHER, old, "EOF")
    assert (result.outcome, result.digest, result.platforms) == (
        TagOutcome.REFUSED,
        OTHER,
        ["linux/amd64"],
    )


def test_a_failed_push_whose_tag_serves_the_index_anyway_is_verified() -> None:
    result = after_failed_push(PLAN, "latest", None, SERVED, "response lost")
    assert (result.outcome, result.digest, result.error) == (TagOutcome.VERIFIED, INDEX, None)


def test_a_failed_push_whose_tag_moved_elsewhere_is_unverified_and_says_both() -> None:
    moved = index(entry("linux/amd64", AMD), digest=OTHER)
    result = after_failed_push(PLAN, "latest", None, moved, "EOF")
    assert result.outcome is TagOutcome.UNVERIFIED
    assert (
        result.error == "EOF; and the tag moved: r.example/team/app:latest: linux/arm64 is missing"
    )


# -- one line -------------------------------------------------------------------------------------

REFUSED_STDERR = """\
#1 [internal] pushing 127.0.0.1:42427/pub/app:latest
#1 0.000 pushing sha256:21b2 to 127.0.0.1:42427/pub/app:latest
#1 ERROR: failed commit on ref "index-sha256:21b2": unexpected status from PUT request to \
http://127.0.0.1:42427/v2/pub/app/manifests/latest: 403 Forbidden
------
 > [internal] pushing 127.0.0.1:42427/pub/app:latest:
------
ERROR: failed commit on ref "index-sha256:21b2": unexpected status from PUT request to \
http://127.0.0.1:42427/v2/pub/app/manifests/latest: 403 Forbidden
"""


def test_buildx_answer_is_its_last_error_line_without_the_commit_noise() -> None:
    assert buildx_answer(REFUSED_STDERR) == (
        "unexpected status from PUT request to "
        "http://127.0.0.1:42427/v2/pub/app/manifests/latest: 403 Forbidden"
    )
    assert buildx_answer("some\nthing went wrong\n") == "thing went wrong"
    assert buildx_answer("") == "no error output"
    assert buildx_answer("ERROR: bad \x1b]52;c;aGk=\x07thing\x1b[2J\n") == "bad thing"


def test_failure_lines_are_flat_inert_and_bounded() -> None:
    assert failure_line(FileNotFoundError(2, "No such file or directory", "/x/run.json")) == (
        "/x/run.json: No such file or directory"
    )
    assert failure_line(RuntimeError("two\nlines\x1b[31m red")) == "two lines red"
    assert len(one_line("x " * 1000)) == 600


def report(*results: TagResult, error: str | None = None) -> PublishReport:
    preview = PublishPreview(_DUMMY, PLAN, None, (), (), None)
    return PublishReport(preview, list(results), error=error)


_DUMMY = RunRecord(Path("/nonexistent"), "run-1", str(REPO), ["1.0", "latest"], [], [])


def tag(
    name: str, outcome: TagOutcome, *, digest: str | None = INDEX, error: str | None = None
) -> TagResult:
    return TagResult(
        name,
        f"{REPO}:{name}",
        outcome,
        digest=digest,
        platforms=["linux/amd64", "linux/arm64"],
        error=error,
    )


def test_report_line_for_each_ending() -> None:
    done = report(tag("1.0", TagOutcome.VERIFIED), tag("latest", TagOutcome.UNCHANGED))
    assert done.ok and not done.no_op and done.moved == ["1.0"]
    assert done.line() == (
        f"published and verified: {REPO}:1.0, {REPO}:latest serve index {INDEX} "
        "(latest already did)"
    )
    same = report(tag("1.0", TagOutcome.UNCHANGED))
    assert same.no_op and same.moved == []
    assert same.line() == f"already published: {REPO}:1.0 already serves this index {INDEX}"
    partly = report(
        tag("1.0", TagOutcome.VERIFIED),
        tag("latest", TagOutcome.REFUSED, digest=None, error="403 Forbidden"),
    )
    assert not partly.ok and partly.moved == ["1.0"]
    assert partly.line() == (
        "latest refused: 403 Forbidden; moved: 1.0; serving the index: 1.0; "
        "`matui manifest` again completes the rest"
    )
    stopped = report(
        tag("1.0", TagOutcome.NOT_ATTEMPTED, digest=None),
        tag("latest", TagOutcome.NOT_ATTEMPTED, digest=None),
        error="imagetools create on amd64-1 could not run: host unreachable",
    )
    assert stopped.line() == (
        "imagetools create on amd64-1 could not run: host unreachable; "
        "not attempted: 1.0, latest; nothing was pushed"
    )
    assert report(error="x; nothing was pushed").line() == "x; nothing was pushed"


# -- previews that need no registry ---------------------------------------------------------------


def test_preview_blocks_while_building_and_when_an_arch_failed(tmp_path: Path) -> None:
    registry = RegistryClient()  # never asked: these previews stop before the registry
    building = record(
        tmp_path / "a", job("amd64", state=JobState.SUCCEEDED, digest=AMD), job("arm64")
    )
    preview = asyncio.run(preview_publish(building, registry=registry, config=None))
    assert preview.blocked == "still building: arm64; wait for every arch to end"
    assert preview.plan is None and preview.tags == ()

    failed = record(
        tmp_path / "b",
        job("amd64", state=JobState.SUCCEEDED, digest=AMD),
        job("arm64", state=JobState.FAILED, failing_step="#7 RUN make"),
    )
    preview = asyncio.run(preview_publish(failed, registry=registry, config=None))
    assert preview.blocked == (
        "not publishing: arm64 is failed: #7 RUN make; fix the cause and build again "
        "(`matui build`, or r on the failed pane)"
    )
    # publish() of a blocked preview does nothing and records nothing.
    result = asyncio.run(publish(preview, registry=registry, config=None, pool=None))
    assert result.results == [] and result.error == preview.blocked and not result.ok
    assert RunRecord.load(failed.dir).publishes == []


def test_preview_of_a_damaged_record_is_blocked_not_an_exception(tmp_path: Path) -> None:
    damaged = record(
        tmp_path,
        job("amd64", state=JobState.SUCCEEDED, digest="sha256:nothex"),
        job("arm64", state=JobState.SUCCEEDED, digest=ARM),
    )
    preview = asyncio.run(preview_publish(damaged, registry=RegistryClient(), config=None))
    assert preview.blocked is not None
    assert preview.blocked.startswith("run 20261201-000000-abcdef's record is damaged: ")


# -- what the front ends lay out ------------------------------------------------------------------

FLAG = Flag(FlagKind.MISSING_IMAGE, Severity.ERROR, "arm64", "the linux/arm64 image is gone")


def preview_with_tags() -> PublishPreview:
    new = TagPreview(
        "1.0",
        f"{REPO}:1.0",
        None,
        False,
        (
            PlatformChange("linux/amd64", None, AMD, Change.ADDED),
            PlatformChange("linux/arm64", None, ARM, Change.ADDED),
        ),
        False,
    )
    kept = TagPreview(
        "latest",
        f"{REPO}:latest",
        INDEX,
        True,
        (
            PlatformChange("linux/amd64", AMD, AMD, Change.SAME),
            PlatformChange("linux/arm64", ARM, ARM, Change.SAME),
        ),
        True,
    )
    return PublishPreview(_DUMMY, PLAN, "amd64-1", (new, kept), (FLAG,), None)


def test_cli_preview_lines() -> None:
    assert format_preview(preview_with_tags()) == [
        f"run run-1: index for {REPO} (created on amd64-1)",
        f"  {REPO}:1.0",
        "    now: nothing (new tag)",
        f"    added    linux/amd64    -                   -> {AMD[:19]}",
        f"    added    linux/arm64    -                   -> {ARM[:19]}",
        f"  {REPO}:latest",
        f"    now: index {INDEX}",
        "    already serves this index: it will not be pushed again",
        f"    same     linux/amd64    {AMD[:19]} -> {AMD[:19]}",
        f"    same     linux/arm64    {ARM[:19]} -> {ARM[:19]}",
        "  error missing-image arm64: the linux/arm64 image is gone",
    ]


def test_dashboard_preview_text() -> None:
    lines = render_preview(preview_with_tags()).plain.splitlines()
    assert lines == [
        f"{REPO}:1.0",
        "  now: nothing (new tag)",
        "  platform       now                  new",
        f"  linux/amd64    -                    {AMD[:19]}  added",
        f"  linux/arm64    -                    {ARM[:19]}  added",
        f"{REPO}:latest",
        f"  now: index {INDEX[:19]}",
        "  already serves this index: not pushed again",
        "  platform       now                  new",
        f"  linux/amd64    {AMD[:19]}  {AMD[:19]}  same",
        f"  linux/arm64    {ARM[:19]}  {ARM[:19]}  same",
        "",
        "Open flags:",
        "  error: missing-image arm64: the linux/arm64 image is gone",
    ]


def test_report_as_the_cli_and_the_dashboard_show_it() -> None:
    partly = report(
        tag("1.0", TagOutcome.VERIFIED),
        tag("latest", TagOutcome.REFUSED, digest=None, error="403 Forbidden"),
    )
    assert format_report(partly) == [
        f"  verified      {REPO}:1.0  index {INDEX} (linux/amd64, linux/arm64)",
        f"  refused       {REPO}:latest  403 Forbidden",
    ]
    text = render_report(partly).plain
    assert text.startswith(f"PARTLY PUBLISHED\n\n{partly.line()}\n")
    assert f"{REPO}:latest\n  refused\n  403 Forbidden\n" in text
    same = report(tag("1.0", TagOutcome.UNCHANGED))
    assert render_report(same).plain.startswith(
        "ALREADY PUBLISHED: 1.0 already serves this index\n"
    )
    assert "unchanged: already serves this index" in render_report(same).plain
    assert render_report(report(error="down; nothing was pushed")).plain.startswith(
        "NOT PUBLISHED\n\ndown; nothing was pushed"
    )


def test_preview_of_a_bad_tag_is_blocked_naming_it(tmp_path: Path) -> None:
    built = record(
        tmp_path,
        job("amd64", state=JobState.SUCCEEDED, digest=AMD),
        job("arm64", state=JobState.SUCCEEDED, digest=ARM),
    )
    preview = asyncio.run(
        preview_publish(built, registry=RegistryClient(), config=None, tags=["1.0", "no way!"])
    )
    assert preview.blocked is not None
    assert preview.blocked.startswith("not publishing: 'no way!' is not a valid tag; ")


# -- an index of jobs pushed by digest (a docker-container, remote or kubernetes builder) --------


def test_index_plan_from_by_digest_jobs_names_digests_not_arch_tags(tmp_path: Path) -> None:
    """Jobs a builder pushed by digest have no per-arch tag: each source is REPO@sha256:...,
    says how it was pushed, and the run's arch tags appear nowhere in the plan."""
    run = record(
        tmp_path,
        job("amd64", state=JobState.SUCCEEDED, digest=AMD, pushed_as=BY_DIGEST),
        job("arm64", state=JobState.SUCCEEDED, digest=ARM, pushed_as="1.0-arm64"),
    )
    plan = plan_index(run)
    assert plan.source_refs == [f"{REPO}@{AMD}", f"{REPO}@{ARM}"]
    assert [(str(s.platform), s.by_digest) for s in plan.sources] == [
        ("linux/amd64", True),
        ("linux/arm64", False),
    ]
    assert plan.to_json()["sources"][0] == {
        "platform": "linux/amd64",
        "digest": AMD,
        "ref": f"{REPO}@{AMD}",
        "pushed_as": BY_DIGEST,
    }
    assert "1.0-amd64" not in str(plan.to_json())
    # An older record (no pushed_as) pushed its per-arch tags: the same digests, not by digest.
    older = record(
        tmp_path / "older",
        job("amd64", state=JobState.SUCCEEDED, digest=AMD),
        job("arm64", state=JobState.SUCCEEDED, digest=ARM),
    )
    assert [s.by_digest for s in plan_index(older).sources] == [False, False]
    assert plan_index(older).source_refs == plan.source_refs


def test_preview_says_which_platforms_were_pushed_by_digest() -> None:
    by_digest = IndexPlan(
        REPO,
        ("1.0",),
        tuple(
            IndexSource(s.platform, s.digest, s.ref, BY_DIGEST if s.digest == ARM else "1.0-amd64")
            for s in PLAN.sources
        ),
    )
    preview = PublishPreview(_DUMMY, by_digest, None, preview_with_tags().tags[:1], (), None)
    lines = format_preview(preview)
    assert lines[:3] == [
        f"run run-1: index for {REPO}",
        "  linux/arm64: pushed by digest (no per-arch tag)",
        f"  {REPO}:1.0",
    ]
    text = render_preview(preview).plain.splitlines()
    assert text[0] == "linux/arm64: pushed by digest (no per-arch tag)"
    # Nothing pushed by digest: no such line.
    assert not any("by digest" in line for line in format_preview(preview_with_tags()))


def test_a_by_digest_source_with_attestations_is_compared_by_the_image_inside_it() -> None:
    """A by-digest build with attestations comes back as an index (the image and its
    attestation manifest). The new index refers to that index (imagetools merges its
    manifests) and serves the image inside it: the diff and the read-back compare that."""
    registry = FakeRegistry()
    built = index(entry("linux/arm64", ARM), entry(None, OTHER, attestation=True), digest=INDEX)
    registry.put(REPO, built)
    sources = (
        IndexSource(Platform.parse("linux/amd64"), AMD, REPO.digest(AMD), "1.0-amd64"),
        IndexSource(Platform.parse("linux/arm64"), INDEX, REPO.digest(INDEX), BY_DIGEST),
        # Not in the registry (any more): left for the pre-publish checks to name.
        IndexSource(Platform.parse("linux/s390x"), OTHER, REPO.digest(OTHER), BY_DIGEST),
    )
    plan = asyncio.run(resolve_sources(IndexPlan(REPO, ("1.0",), sources), registry))
    assert [(s.digest, s.served, s.platform_digest) for s in plan.sources] == [
        (AMD, None, AMD),
        (INDEX, ARM, ARM),
        (OTHER, None, OTHER),
    ]
    assert plan.source_refs == [REPO.digest(AMD), REPO.digest(INDEX), REPO.digest(OTHER)]
    two = replace(plan, sources=plan.sources[:2])
    served = index(
        entry("linux/amd64", AMD),
        entry("linux/arm64", ARM),
        entry(None, OTHER, attestation=True),
        digest="sha256:" + "e" * 64,
    )
    assert index_problems(two, served) == []
    assert [c.after for c in index_diff(None, two)] == [AMD, ARM]
