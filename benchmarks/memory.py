"""Memory for a huge log: resident memory growth while ~1 GiB of log lines go through LogStore.

Lines (80-byte buildx-like, 81 bytes with the line break) are appended in the pane's batches of
2 000 until the log holds ``--mib`` MiB; the process's RSS is read at every quarter. The
baseline is the log's own size: a store that keeps every line in memory grows at least that
much. Then the last line is searched for (all of it must stay searchable).

Target: bounded, i.e. RSS growth <= twice the store's memory limit (default 128 MiB: 256 MiB,
a quarter of a 1 GiB log) and not proportional to the log (the second half of the appends adds
at most half of what the first half added). ``--small`` sets a 4 MiB limit so that spilling runs.

    .venv/bin/python -m benchmarks.memory [--mib 1024]
"""

from __future__ import annotations

import time

from benchmarks.common import Figure, emit, log_line, parser, rss_bytes, settle_memory

MIB = 1 << 20
BATCH = 2_000
LAST = "#999 0.000 END-OF-BENCHMARK-LOG the last line"


def main() -> None:
    from matui.engine.logstore import LogStore

    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--mib", type=int, default=None, help="log size in MiB")
    p.add_argument("--limit-mib", type=int, default=None, help="the store's memory limit")
    args = p.parse_args()
    target_bytes = (args.mib or (32 if args.small else 1024)) * MIB
    limit_mib = args.limit_mib or (4 if args.small else None)
    pool = [log_line(i) for i in range(100_000)]
    line_bytes = len(pool[0]) + 1
    base = settle_memory()
    store = LogStore() if limit_mib is None else LogStore(memory_limit=limit_mib * MIB)
    memory_limit = store.memory_limit or 0
    appended = 0
    pos = 0
    marks: list[tuple[int, int]] = []
    next_mark = target_bytes // 4
    start = time.perf_counter()
    while appended < target_bytes:
        batch = pool[pos : pos + BATCH]
        pos = (pos + BATCH) % len(pool)
        store.append(batch)
        appended += line_bytes * len(batch)
        if appended >= next_mark:
            marks.append((appended, rss_bytes() - base))
            next_mark += target_bytes // 4
    store.append([LAST])
    appended += len(LAST) + 1
    seconds = time.perf_counter() - start
    growth = settle_memory() - base
    t0 = time.perf_counter()
    hit = store.search("END-OF-BENCHMARK-LOG")
    search_ms = (time.perf_counter() - t0) * 1000
    if hit != len(store) - 1:
        raise SystemExit(f"the last line is not searchable: {hit} != {len(store) - 1}")
    half = marks[1][1] if len(marks) > 1 else 0
    second_half = growth - half
    limit = 2 * memory_limit
    emit(
        Figure(
            name="memory_1gb",
            what=f"RSS growth for a {appended / MIB:,.0f} MiB log ({len(store):,} lines) "
            "in one LogStore",
            value=growth / MIB,
            unit="MiB",
            baseline="log size",
            baseline_value=appended / MIB,
            ratio=growth / appended,
            ratio_text="RSS growth / log bytes",
            target=f"bounded: <= {limit / MIB:.0f} MiB (2x the store's limit)",
            met=growth <= limit and second_half <= max(half, 1) * 0.5,
            detail="RSS growth at each quarter: "
            + ", ".join(f"{a / MIB:.0f} MiB -> {g / MIB:.0f} MiB" for a, g in marks)
            + f"; append {appended / MIB / seconds:.0f} MiB/s; "
            f"search for the last line {search_ms:.0f} ms",
        )
    )


if __name__ == "__main__":
    main()
