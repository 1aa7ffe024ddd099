"""matui's engine: everything the CLI and the dashboard show, computed once, with no UI import.

Layers, top to bottom (each imports only the layers below it; `lint-imports` enforces this and
that nothing here imports Textual, Rich, ``matui.ui`` or ``matui.cli``):

``bundle``
    One archive of a run for an incident (logs, record, host facts, plan; secrets redacted).
``build`` · ``publish``
    Start and follow a run (``build.start``, ``build.run``); preview and push the index
    (``publish``).
``records``
    Runs on disk, typed (jobs, flags, host probes, publishes per tag), one reader/writer.
``flags``
    Every tag-overwrite and arch-mismatch rule as a pure function (``flags.tag_overwrite``,
    ``flags.arch_mismatch``), and the gatherers that read the registry or hosts for one phase
    (``flags.gather``).
``plan``
    What will be built where (``BuildPlan``) and what the index will hold (``IndexPlan``).
``probe`` · ``registry`` · ``logstore`` · ``hostgc``
    What a host really is; what a registry serves; one job's log lines, searchable; which of
    the job directories matui left on a host are due to go.
``ssh`` · ``config``
    One checked connection per host; the config file as values.
``arch`` · ``refs`` · ``shell`` · ``text``
    Vocabulary: platforms, image references, remote commands (the one place that quotes),
    host text made inert.

The one data path for a build's log: host → ``tail`` over SSH in 64 KiB reads → ``build.run``
splits, decodes and neutralises once → events from ``BuildRun.events()`` → the CLI prints them /
the dashboard's ``LogPane`` stores them in a ``LogStore`` and flushes every 50 ms.
"""
