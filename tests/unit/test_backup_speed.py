"""What keeps a backup fast, without processes: the archive's disk writes started as its bytes come (``Writeback``:
contiguous ranges every ``WRITEBACK`` bytes, then one fsync), and the steps a backup reports under
``UNISTACK_DEBUG_BACKUP`` (``Steps``), over the fake ``DataStreams`` of test_backup."""

from __future__ import annotations

import itertools
import os
import tarfile
from pathlib import Path

from tests.unit.test_backup import DATA, FakeStreams, stack
from unistack.ops import backup
from unistack.ops.archive import Manifest
from unistack.ops.archive_writer import WRITEBACK, ArchiveWriter, Writeback

MANIFEST = Manifest(
    format=1, project="p", environment="local", created="now", unistack_version="0", runtime="process", parts=()
)


class Ranges:
    """A ``sync_file_range`` that records what it is asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[int, int, int, int]] = []

    def __call__(self, fd: int, offset: int, size: int, flags: int) -> int:
        self.asked.append((fd, offset, size, flags))
        return 0


def test_writeback_asks_for_contiguous_ranges_every_writeback_bytes() -> None:
    ranges = Ranges()
    writeback = Writeback(7, ranges)
    for end in range(0, 3 * WRITEBACK + 1, 1 << 20):
        writeback(end)
    assert [(offset, size) for _, offset, size, _ in ranges.asked] == [(i * WRITEBACK, WRITEBACK) for i in range(3)]
    assert {(fd, flags) for fd, _, _, flags in ranges.asked} == {(7, 2)}  # SYNC_FILE_RANGE_WRITE: never waits


def test_a_streamed_and_an_appended_part_are_written_back_as_they_come(tmp_path: Path) -> None:
    writer = ArchiveWriter(tmp_path / "a.tar")
    ranges = Ranges()
    writer.writeback = Writeback(writer.fd, ranges)
    chunk = os.urandom(1 << 20)
    spool = writer.spool(memory=1 << 20)
    with writer.part("parts/streamed") as out:
        for _ in range(2 * WRITEBACK // len(chunk) + 1):
            out(memoryview(chunk))
            spool(memoryview(chunk))  # beyond its memory: a file, copied in by the kernel
    writer.append("parts/spooled", spool)
    spool.close()
    writer.finish(MANIFEST)
    offsets = [(offset, size) for _, offset, size, _ in ranges.asked]
    assert offsets[:2] == [(0, offsets[1][0]), (offsets[1][0], WRITEBACK)]  # from the start, no gap between
    assert all(a + s == b for (a, s), (b, _) in itertools.pairwise(offsets))
    assert offsets[-1][0] + offsets[-1][1] > 4 * WRITEBACK  # the appended part's bytes too
    with tarfile.open(tmp_path / "a.tar") as tar:
        assert [m.size for m in tar.getmembers()][:2] == [len(chunk) * 17, len(chunk) * 17]


def test_the_real_call_writes_back_a_file(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    try:
        os.write(fd, b"x" * WRITEBACK)
        Writeback(fd)(WRITEBACK)  # Linux: sync_file_range through ctypes; elsewhere nothing; never raises
        os.fsync(fd)
    finally:
        os.close(fd)


def test_steps_are_told_each_part_and_the_archive(tmp_path: Path) -> None:
    project = stack(tmp_path)
    steps = backup.Steps(began=0.0)
    path = backup.output_path(project, None, 1_700_000_000)
    backup.take(project, backup.plan(project), FakeStreams(dict(DATA)), "process", path, None, steps)
    said = [what for what, _ in steps.marks]
    assert said[-1] == "the archive written, fsynced and renamed"
    for label in ("db (postgres)", "backend (volume uploads)", "notes (command)"):
        assert f"{label}: first bytes" in said and any(s.startswith(f"{label}: all ") for s in said)
    assert "db (postgres): its server's version read (15.4)" in said
    assert all(seconds > 0 for _, seconds in steps.marks)
    assert all(line.endswith(what) for line, (what, _) in zip(steps.lines(), steps.marks, strict=True))


def test_steps_count_from_the_process_start() -> None:
    steps = backup.Steps()
    steps("now")
    assert 0 < steps.marks[0][1] < 86400  # this process started before the step, within the test run
