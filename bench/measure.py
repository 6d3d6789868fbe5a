#!/usr/bin/env python3
"""Runs one command and prints `WALL_S USER_S SYS_S MAXRSS_KB` for it:
bench/run.sh's stopwatch.

    python3 bench/measure.py [--no-rss] COMMAND [ARGS...]

Wall time is measured here; user and system CPU come from the child's own
rusage as wait4 returns it (microsecond resolution, the command and
everything it waited for). Not getrusage(RUSAGE_CHILDREN): that would also
count whatever launched this interpreter (a pyenv shim's helper processes).

Peak RSS is what GNU time calls "Maximum resident set size". When
/usr/bin/time exists the command runs under it and its %M is used: a child
forked from Python carries the interpreter's own peak (~10 MB) into its
ru_maxrss across exec, which would overstate a small program. Without
/usr/bin/time, ru_maxrss is printed all the same, an overstatement by that
much (and the fifth field says `inflated`).

Under /usr/bin/time the CPU is that of time and the command together: time's
own start costs about 1 ms of CPU (it is a dynamically linked program that
forks), which is noise beside a run of seconds but 3-4% of a 30 ms one (the
latency-bound export of row (b)), and it would count against whichever
program is faster. --no-rss starts the command directly, so the CPU is the
command's alone, and prints `-` for the peak RSS.

The command's stdout goes to stderr, so only the numbers are on stdout; a
non-zero exit is reported and this exits with it.
"""

import os
import subprocess
import sys
import tempfile
import time

GNU_TIME = "/usr/bin/time"


def main() -> int:
    command = sys.argv[1:]
    want_rss = command[:1] != ["--no-rss"]
    if not want_rss:
        command = command[1:]
    if not command:
        print(__doc__, file=sys.stderr)
        return 2
    rss_file = None
    if want_rss and os.access(GNU_TIME, os.X_OK):
        fd, rss_file = tempfile.mkstemp(prefix="measure-rss-")
        os.close(fd)
        command = [GNU_TIME, "-f", "%M", "-o", rss_file, "--"] + command
    try:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=sys.stderr)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            print(f"measure.py: {command[0]} exited with {code}", file=sys.stderr)
            return code or 1
        note = ""
        if not want_rss:
            max_rss_kb = "-"
        elif rss_file is not None:
            with open(rss_file, encoding="utf-8") as f:
                # GNU time may put "Command exited ..." lines first; %M is last.
                max_rss_kb = int(f.read().split()[-1])
        else:
            max_rss_kb = usage.ru_maxrss  # KiB on Linux
            note = " inflated"
    finally:
        if rss_file is not None:
            os.unlink(rss_file)
    print(f"{wall:.4f} {usage.ru_utime:.4f} {usage.ru_stime:.4f} {max_rss_kb}{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
