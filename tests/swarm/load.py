"""A steady request load from inside a node's network namespace (the only place the nodes' addresses exist),
bounded in count and time: ``python3 load.py URL SECONDS STOP_FILE`` sends one GET every 50 ms until STOP_FILE
exists (then 20 more) or SECONDS passed, then prints one JSON object: requests, failed, the failed-request window
(first to last failure, seconds) and whether the last requests succeeded. Standard library only: it runs
with the host's python3.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from pathlib import Path


def main() -> None:
    url, seconds, stop_file = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    started = time.monotonic()
    results: list[tuple[float, bool]] = []
    tail = 20  # requests sent after STOP_FILE appeared: what "the last requests succeeded" is about
    while time.monotonic() - started < seconds and tail > 0 and len(results) < 20_000:
        tail -= Path(stop_file).exists()
        sent = time.monotonic()
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                ok = answer.status == 200
        except Exception:
            ok = False
        results.append((sent - started, ok))
        time.sleep(max(0.0, 0.05 - (time.monotonic() - sent)))
    failures = [at for at, ok in results if not ok]
    print(
        json.dumps(
            {
                "requests": len(results),
                "failed": len(failures),
                "window_s": round(failures[-1] - failures[0], 2) if failures else 0.0,
                "tail_ok": bool(results) and all(ok for _, ok in results[-10:]),
            }
        )
    )


if __name__ == "__main__":
    main()
