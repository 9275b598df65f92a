#!/usr/bin/env python3
"""Where one thread's samples go, from `perf script` (BENCHMARKS.md, issue 21).

`perf report` sorts by symbol; what workload 3 needs is per thread: how much of the
tokio workers' time is the allocator, and on whose behalf; how much of the writer's is
SQLite. Usage:

    perf record -F 2000 --call-graph dwarf,16384 -o perf.data \
        target/release/examples/bench --only 3 --durable-inflight 10000 \
        --durability process --runs 2
    perf script -i perf.data -F comm,tid,ip,sym > perf.txt
    tools/perf-by-thread.py perf.txt bench-tokio --exclude 'raw::replay|Trace::encode|walCheckpoint'
    tools/perf-by-thread.py perf.txt sqlite-writer

A sample counts as the allocator's if one of its innermost 15 frames is glibc's
`malloc`/`free` family; it is then charged to the first frame above that belongs to the
project, tokio, serde or rusqlite (its "owner"). Other samples are charged to their
innermost such frame.
"""

import argparse
import collections
import re

ALLOCATOR = re.compile(
    r"^(__GI___libc_malloc|__GI___libc_free|__GI___libc_realloc|_int_malloc|_int_free|"
    r"_int_realloc|_int_memalign|_mid_memalign|__posix_memalign|malloc|cfree|sysmalloc|"
    r"malloc_consolidate|unlink_chunk|tcache_)"
)
OWNER = re.compile(
    r"^<?(workflow_runtime|workflow|bench|tokio|tokio_util|serde|serde_json|serde_core|"
    r"futures_util|hashbrown|smallvec|rusqlite|core::ptr::drop_in_place<workflow)"
)


def samples(path):
    """(comm, [frames, innermost first]) per sample."""
    comm, frames = None, []
    with open(path, errors="replace") as f:
        for line in f:
            if not line.strip():
                if comm is not None:
                    yield comm, frames
                comm, frames = None, []
            elif not line[0].isspace():
                comm = line.split()[0]
            else:
                parts = line.strip().split(None, 1)
                symbol = parts[1] if len(parts) > 1 else "?"
                frames.append(re.sub(r"\+0x[0-9a-f]+$", "", symbol))
    if comm is not None:
        yield comm, frames


def owner(frames):
    for f in frames:
        if OWNER.search(f):
            return f[:110]
    return "(outside: " + (frames[0][:60] if frames else "?") + ")"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("script", help="the output of `perf script -F comm,tid,ip,sym`")
    p.add_argument("comm", help="the thread name, e.g. bench-tokio or sqlite-writer")
    p.add_argument("--exclude", help="leave out samples with a frame matching this")
    p.add_argument("--top", type=int, default=25)
    a = p.parse_args()
    exclude = re.compile(a.exclude) if a.exclude else None
    selected = [
        frames
        for comm, frames in samples(a.script)
        if comm == a.comm and not (exclude and any(exclude.search(f) for f in frames))
    ]
    total = len(selected)
    if total == 0:
        print(f"no samples of {a.comm}")
        return
    alloc, other, leaves = collections.Counter(), collections.Counter(), collections.Counter()
    for frames in selected:
        if any(ALLOCATOR.search(f) for f in frames[:15]):
            alloc[owner([f for f in frames if not ALLOCATOR.search(f)])] += 1
            leaves[frames[0][:60] if frames else "?"] += 1
        else:
            other[owner(frames)] += 1
    n_alloc = sum(alloc.values())
    print(f"{a.comm}: {total} samples; the allocator {n_alloc} ({100 * n_alloc / total:.0f} %)")
    print("\nthe allocator's samples, by owner:")
    for k, v in alloc.most_common(a.top):
        print(f"{v:7} {k}")
    print("\nthe allocator's samples, by innermost frame:")
    for k, v in leaves.most_common(12):
        print(f"{v:7} {k}")
    print("\nthe other samples, by owner:")
    for k, v in other.most_common(a.top):
        print(f"{v:7} {k}")


if __name__ == "__main__":
    main()
