#!/usr/bin/env python3
"""Runs one command and prints `WALL_S USER_S SYS_S MAXRSS_KB` for it
(bench/run.sh's stopwatch; the same numbers GNU time reports, from
getrusage(RUSAGE_CHILDREN), with no dependency on /usr/bin/time).

    python3 bench/measure.py COMMAND [ARGS...]

The command's stdout and stderr are passed through; a non-zero exit is
reported and this exits with it.
"""

import resource
import subprocess
import sys
import time


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    started = time.perf_counter()
    code = subprocess.call(sys.argv[1:], stdout=sys.stderr)
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if code != 0:
        print(f"measure.py: {sys.argv[1]} exited with {code}", file=sys.stderr)
        return code or 1
    # ru_maxrss is in KiB on Linux.
    print(f"{wall:.4f} {usage.ru_utime:.4f} {usage.ru_stime:.4f} {usage.ru_maxrss}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
