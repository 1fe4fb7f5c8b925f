"""A volume read for a backup by host processes while files come and go in it (as the stack's backend makes and
deletes a probe file in its uploads at every healthcheck): GNU tar says "file changed as we read it" and exits 1,
which is not a failure online; every file complete before the read is in the stream whole."""

from __future__ import annotations

import io
import os
import tarfile
import threading
import time
from pathlib import Path

from unistack.config import load
from unistack.runtimes.process_data import ProcessData

COMPOSE = """\
services:
  app:
    volumes: [files:/data]
    x-unistack:
      process:
        command: ["sleep", "1"]
volumes:
  files: {}
"""


def test_files_written_and_removed_during_the_read_do_not_fail_it(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    project = load([tmp_path / "compose.yaml"], env={"UNISTACK_STATE_DIR": str(tmp_path / "state")}, cwd=tmp_path)
    folder = project.volumes_dir / "files"
    folder.mkdir(parents=True)
    kept = {f"kept-{n}": os.urandom(200_000) for n in range(20)}
    for name, data in kept.items():
        (folder / name).write_bytes(data)
    streams = ProcessData(project, {})
    stop = threading.Event()

    def churn() -> None:  # bounded: until stopped, or 60 s
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            probe = folder / ".ready-probe"
            probe.write_bytes(b"x" * 4096)
            probe.unlink()

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        for _ in range(20):
            out = bytearray()
            streams.volume_out(project.services["app"], "files", out.extend)
            with tarfile.open(fileobj=io.BytesIO(bytes(out))) as tar:
                read = {m.name[2:]: tar.extractfile(m).read() for m in tar if m.isfile() and "kept" in m.name}  # type: ignore[union-attr]
            assert read == kept
    finally:
        stop.set()
        thread.join()
