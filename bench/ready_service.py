"""A service whose readiness takes a known time, for the benchmarks.

Environment: READY_AFTER (seconds after the process was created, not after the interpreter finished
starting), MARKER (the file to create once ready). The marker holds one JSON object: ``ready_at`` (epoch
seconds), ``boot_age`` (seconds from process creation to ``main``) and ``pid``. After that it idles.
Imports only the standard library's basics so that it starts fast (run it with ``python -S``).
"""

import json
import os
import sys
import time


def process_age() -> float:
    """Seconds since this process was created (10 ms resolution), from /proc; 0 when unknown."""
    try:
        with open("/proc/self/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start time in ticks since boot
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - started
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0
    return age if 0.0 <= age < 5.0 else 0.0


def main() -> None:
    age = process_age()
    ready_after = float(os.environ.get("READY_AFTER", "0"))
    marker = os.environ.get("MARKER")
    time.sleep(max(0.0, ready_after - age))
    if marker:
        tmp = f"{marker}.tmp"
        with open(tmp, "w") as fh:
            json.dump({"ready_at": time.time(), "boot_age": age, "pid": os.getpid()}, fh)
        os.replace(tmp, marker)  # noqa: PTH105 (pathlib costs 10-30 ms of start); the check never sees half a marker
    sys.stdout.flush()
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
