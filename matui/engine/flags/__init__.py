"""Flags that tell the truth: every tag-overwrite and arch-mismatch check, in one place.

The checks are small **pure** functions over facts (registry manifests, image configs, plans,
host configs, log evidence) that return :class:`~matui.engine.flags.Flag` lists; a clean
release yields no flag at all. Three ``async`` gatherers read the registry for one phase each
and call the pure checks:

* :func:`preflight_flags` — before the build starts (per-arch tags, release tags, the plan);
* :func:`postbuild_flags` — after the builds pushed (config arch of each built digest, per-arch
  tag digests, log evidence);
* :func:`premanifest_flags` — before ``imagetools create`` (release tags moved or diffed, index
  shape, cross-repository sources, config arch of each source).

Readiness, before the build and in ``matui check`` (:func:`check_config`): :func:`base_image_flags`
(each ``FROM`` image exists for the platform a job pulls it for), and in :func:`check_hosts` the
free-disk floor (:func:`disk_floor_flags`) and each host's way to the registry
(:func:`push_access_flags`).

:func:`index_diff` is the platform-by-platform dry-run diff the CLI and the dashboard render.

Registry errors are not turned into flags: a gatherer that cannot read the registry raises the
client's :class:`~matui.engine.registry.RegistryError`, and the caller must treat that as "not
checked" (refuse), never as "clean".
"""

from matui.engine.flags.arch_mismatch import (
    emulation_flags,
    image_config_flags,
    index_shape_flags,
    log_evidence_flags,
)
from matui.engine.flags.diff import (
    BUILDX_CROSS_REPO_FIXED,
    Change,
    PlatformChange,
    RegistryReader,
    index_diff,
)
from matui.engine.flags.driver import by_digest_jobs, job_route
from matui.engine.flags.gather import (
    BuiltImage,
    CheckReport,
    base_image_flags,
    build_targets,
    cancelled_push_flags,
    check_config,
    check_hosts,
    index_diffs,
    postbuild_flags,
    preflight_flags,
    premanifest_flags,
    read_tags,
)
from matui.engine.flags.model import (
    Flag,
    FlagKind,
    Severity,
    has_errors,
    host_arch_flags,
)
from matui.engine.flags.readiness import disk_floor_flags, push_access_flags
from matui.engine.flags.tag_overwrite import (
    arch_tag_flags,
    arch_tag_moved_flags,
    cross_repo_flags,
    duplicate_push_flags,
    missing_source_flags,
    parse_buildx_version,
    pushed_after_cancel_flags,
    release_platform_flags,
    release_tag_flags,
    tag_moved_flags,
)

__all__ = [
    "BUILDX_CROSS_REPO_FIXED",
    "BuiltImage",
    "Change",
    "CheckReport",
    "Flag",
    "FlagKind",
    "PlatformChange",
    "RegistryReader",
    "Severity",
    "arch_tag_flags",
    "arch_tag_moved_flags",
    "base_image_flags",
    "build_targets",
    "by_digest_jobs",
    "cancelled_push_flags",
    "check_config",
    "check_hosts",
    "cross_repo_flags",
    "disk_floor_flags",
    "duplicate_push_flags",
    "emulation_flags",
    "has_errors",
    "host_arch_flags",
    "image_config_flags",
    "index_diff",
    "index_diffs",
    "index_shape_flags",
    "job_route",
    "log_evidence_flags",
    "missing_source_flags",
    "parse_buildx_version",
    "postbuild_flags",
    "preflight_flags",
    "premanifest_flags",
    "push_access_flags",
    "pushed_after_cancel_flags",
    "read_tags",
    "release_platform_flags",
    "release_tag_flags",
    "tag_moved_flags",
]
