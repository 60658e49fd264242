#!/usr/bin/env python3
"""Holds memory so that only LEAVE_GB stay available to other programs, as a smaller machine would
have: for measuring the expert cache (`qnext bench --mem-budget`) on a machine with more RAM.

    scripts/mem-balloon.py 8 &      # allocates and touches MemAvailable - 8 GB, then waits
    build/qnext bench --model models/slice4 -p 0 -n 32 ...
    kill %1

Anonymous memory that is touched cannot be dropped like the page cache (and without swap cannot be
paged out), so the kernel has only what is left for file pages and the benchmarked process.
"""
import mmap
import signal
import sys
import time


def mem_available():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise SystemExit("mem-balloon: /proc/meminfo has no MemAvailable")


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: mem-balloon.py LEAVE_GB")
    leave = int(float(sys.argv[1]) * 1e9)
    size = mem_available() - leave
    if size <= 0:
        raise SystemExit(f"mem-balloon: only {mem_available() / 1e9:.2f} GB available, nothing to hold")
    buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    page = mmap.PAGESIZE
    for at in range(0, size, page):
        buf[at] = 1
    print(f"mem-balloon: holding {size / 1e9:.2f} GB; {mem_available() / 1e9:.2f} GB available now", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
