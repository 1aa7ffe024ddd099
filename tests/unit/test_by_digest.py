"""Jobs pushed by digest (a host whose builder is docker-container, remote or kubernetes): the
route the run takes for a job from its host entry and probe, what the job's status and record
say of it (``pushed_as``, builder, node) and that older records, which have none of it, still
read as per-arch tag pushes."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from matui.engine.arch import Platform
from matui.engine.build.run import BuildRun
from matui.engine.builders import BY_DIGEST
from matui.engine.config import HostConfig, ImageConfig
from matui.engine.flags import BuiltImage, job_route
from matui.engine.plan import BuildJob
from matui.engine.probe import HostProbe
from matui.engine.records import JobRecord, JobState, RunRecord
from tests.helpers.records import job_record
from tests.helpers.runs import offline_run

DIGEST = "sha256:" + "1" * 64
ARMV7 = Platform.parse("linux/arm/v7")


def test_job_route_from_the_host_entry_and_its_probe(tmp_path: Path) -> None:
    """A kubernetes builder: by digest, provenance and sbom, a cache ref per image and arch
    (arm/v7 as arm-v7). The same host without its probe's driver reading: a docker context."""
    image = ImageConfig(
        "r.example/team/app",
        ("1.0",),
        tmp_path,
        (ARMV7,),
        cache="r.example/team/cache",
        attestations=("sbom", "provenance"),
    )
    job = BuildJob(ARMV7, "arm-1", False, "1.0-armv7", "r.example/team/app:1.0-armv7")
    hosts = [HostConfig("arm-1", "arm/v7", "192.0.2.10", builder="kube")]
    probe = HostProbe("arm-1", "arm/v7", True, builder="kube", builder_driver="kubernetes")
    route = job_route(image, job, hosts, [probe])
    assert route.buildx_options() == {
        "builder": "kube",
        "builder_is_context": False,
        "push_by_digest": True,
        "attestations": ("provenance", "sbom"),
        "cache_ref": "r.example/team/cache:app-arm-v7",
    }
    assert route.pushed_as == BY_DIGEST
    unread = job_route(image, job, hosts, [])
    assert (unread.builder_is_context, unread.push_by_digest, unread.cache_ref) == (
        True,
        False,
        None,
    )


def test_a_record_without_pushed_as_reads_as_a_per_arch_tag_push(tmp_path: Path) -> None:
    old = job_record("amd64", state=JobState.SUCCEEDED, digest=DIGEST).to_json()
    del old["pushed_as"], old["builder"], old["builder_node"]
    loaded = JobRecord.from_json(old)
    assert (loaded.pushed_as, loaded.by_digest) == (None, False)

    record = RunRecord.create(
        tmp_path,
        image="r.example/app",
        tags=["1.0"],
        platforms=["linux/amd64"],
        jobs=[
            job_record(
                "amd64",
                state=JobState.SUCCEEDED,
                digest=DIGEST,
                pushed_as=BY_DIGEST,
                builder="kube",
                builder_node="builder-amd64",
            )
        ],
    )
    saved = json.loads((record.dir / "run.json").read_text())["jobs"][0]
    assert (saved["pushed_as"], saved["builder"], saved["builder_node"]) == (
        BY_DIGEST,
        "kube",
        "builder-amd64",
    )
    again = RunRecord.load(record.dir).jobs[0]
    assert again.by_digest and again.builder_node == "builder-amd64"
    assert RunRecord.load(record.dir).built_images() == [
        BuiltImage(Platform.parse("linux/amd64"), DIGEST, "1.0-amd64", by_digest=True)
    ]


def test_status_says_how_it_was_pushed_and_a_resume_keeps_it(tmp_path: Path) -> None:
    run = offline_run(tmp_path, "r.example/app", ("amd64", "arm64"))
    kube, own = run.status["amd64"], run.status["arm64"]
    kube.digest, kube.pushed_as = DIGEST, BY_DIGEST
    kube.builder, kube.builder_node = "kube", "builder-amd64"
    assert kube.pushed_line == "pushed by digest; builder kube/node builder-amd64"
    assert kube.outcome_line == f"{DIGEST} (pushed by digest; builder kube/node builder-amd64)"
    own.digest, own.pushed_as = DIGEST, "1.0-arm64"
    assert (own.pushed_line, own.outcome_line) == ("", DIGEST)
    own.digest, own.error = None, "exit 1"
    assert own.outcome_line == "exit 1"

    # The status's fields are the record's: saving it is what the run does at each change.
    run.record.update_job("amd64", **kube.to_json())
    record = RunRecord.load(run.record.dir)
    assert record.jobs[0].pushed_as == BY_DIGEST
    resumed = BuildRun.resume(record, run.config, run.pool)
    again = resumed.status["amd64"]
    assert (again.pushed_as, again.builder, again.builder_node) == (
        BY_DIGEST,
        "kube",
        "builder-amd64",
    )
    assert again.pushed_line == kube.pushed_line


# -- the runner reading a by-digest build's end --------------------------------------------------

#: buildx's reference metadata of a build on node mybuilder0 of builder mybuilder.
DC_METADATA = Path(__file__).parents[1] / "data" / "builders" / "metadata-docker-container.json"
DC_DIGEST = "sha256:19ffeab6f8bc9293ac2c3fdf94ebe28396254c993aea0b5a542cfb02e0883fa3"


def builder_run(tmp_path: Path) -> BuildRun:
    """One amd64 job on a host whose builder is mybuilder (docker-container, node mybuilder0),
    launched by digest (what ``_launch`` records from the job's route)."""
    run = offline_run(tmp_path, "r.example/app", ("amd64",))
    run.config = replace(
        run.config, hosts=tuple(replace(h, builder="mybuilder") for h in run.config.hosts)
    )
    run.probes = [
        HostProbe(
            "amd64-1",
            "amd64",
            True,
            builder="mybuilder",
            builder_driver="docker-container",
            builder_nodes=("mybuilder0=amd64",),
        )
    ]
    status = run.status["amd64"]
    status.pushed_as, status.builder = BY_DIGEST, "mybuilder"
    return run


def test_digest_and_node_come_from_the_recorded_metadata(tmp_path: Path) -> None:
    run = builder_run(tmp_path)
    status = run.status["amd64"]
    run._finish(
        status, run._logs["amd64"].parser, {"exit": "0", "metadata": DC_METADATA.read_text()}
    )
    assert status.state is JobState.SUCCEEDED and status.digest == DC_DIGEST
    assert status.builder_node == "mybuilder0"
    assert status.outcome_line == (
        f"{DC_DIGEST} (pushed by digest; builder mybuilder/node mybuilder0)"
    )
    saved = RunRecord.load(run.record.dir).job("amd64")
    assert (saved.digest, saved.pushed_as, saved.builder, saved.builder_node) == (
        DC_DIGEST,
        BY_DIGEST,
        "mybuilder",
        "mybuilder0",
    )


def test_a_late_cancel_of_a_by_digest_job_names_the_digest_not_the_arch_tag(
    tmp_path: Path,
) -> None:
    run = builder_run(tmp_path)
    status = run.status["amd64"]
    run._cancelled.add("amd64")
    run._finish(
        status, run._logs["amd64"].parser, {"exit": "0", "metadata": DC_METADATA.read_text()}
    )
    (late,) = [n for n in status.notes if "the cancel came too late" in n]
    assert late.endswith(f"pushed r.example/app@{DC_DIGEST} (by digest)")
    assert "1.0-amd64" not in late
