"""Builds: start a run (plan, pre-flight, launch), follow it (events), and the pieces a job needs
on the way (the context tar, .dockerignore, buildx progress parsing).

``start`` plans and launches; ``run`` supervises the jobs of one run and turns host bytes into
events; ``progress`` reads buildx's plain progress; ``steps`` makes a job's step table and puts
a run's arches side by side; ``context`` and ``dockerignore`` stream the build context.
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
    PreparedRelease,
    release_images,
    start_build,
    start_release,
)
from matui.engine.build.steps import (
    Comparison,
    StepClock,
    StepTable,
    compare,
    compare_run,
    step_table,
)
from matui.engine.records import JobState

__all__ = [
    "CHUNK",
    "BuildRefused",
    "BuildRun",
    "Comparison",
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
    "PreparedRelease",
    "RunFinished",
    "StateEvent",
    "StepChange",
    "StepClock",
    "StepTable",
    "compare",
    "compare_run",
    "failure_record",
    "release_images",
    "start_build",
    "start_release",
    "step_table",
]
