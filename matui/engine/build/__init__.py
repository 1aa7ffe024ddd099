"""Builds: start a run (plan, pre-flight, launch), follow it (events), and the pieces a job needs
on the way (the context tar, .dockerignore, buildx progress parsing).

``start`` plans and launches; ``run`` supervises the jobs of one run and turns host bytes into
events; ``progress`` reads buildx's plain progress; ``context`` and ``dockerignore`` stream the
build context.
"""

from matui.engine.build.failure import FailureRecord, JobFacts, failure_record
from matui.engine.build.run import (
    CHUNK,
    BuildRun,
    Event,
    FlagsEvent,
    JobStatus,
    LinesEvent,
    NoteEvent,
    RunFinished,
    StateEvent,
    StepChange,
)
from matui.engine.build.start import (
    BuildRefused,
    ImageLocked,
    PreparedBuild,
    start_build,
)
from matui.engine.records import JobState

__all__ = [
    "CHUNK",
    "BuildRefused",
    "BuildRun",
    "Event",
    "FailureRecord",
    "FlagsEvent",
    "ImageLocked",
    "JobFacts",
    "JobState",
    "JobStatus",
    "LinesEvent",
    "NoteEvent",
    "PreparedBuild",
    "RunFinished",
    "StateEvent",
    "StepChange",
    "failure_record",
    "start_build",
]
