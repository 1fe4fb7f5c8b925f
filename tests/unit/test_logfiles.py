"""Log files of host processes: rotation that an O_APPEND writer survives, tail, follow across rotation, and
appending that drops and counts what a full disk refuses (/dev/full stands for the full disk)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from unistack.runtimes import logfiles
from unistack.runtimes.logwriter import Appender, AppendStream


def test_rotation_copies_then_truncates_and_the_writer_keeps_appending(tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)  # what a service holds
    try:
        os.write(fd, b"x" * 100 + b"\n")
        assert not logfiles.rotate_if_needed(log, max_bytes=1000)
        os.write(fd, b"y" * 1000 + b"\n")
        assert logfiles.rotate_if_needed(log, max_bytes=1000, keep=2)
        assert log.stat().st_size == 0 and (tmp_path / "api.log.1").stat().st_size == 1102
        os.write(fd, b"after rotation\n")
        assert log.read_bytes() == b"after rotation\n"  # no hole: O_APPEND writes at the new end
        os.write(fd, b"z" * 2000 + b"\n")
        assert logfiles.rotate_if_needed(log, max_bytes=1000, keep=2)
        assert (tmp_path / "api.log.2").stat().st_size == 1102
        assert (tmp_path / "api.log.1").read_bytes().startswith(b"after rotation\n")
    finally:
        os.close(fd)


def test_tail_reaches_into_the_rotated_file(tmp_path: Path) -> None:
    (tmp_path / "api.log.1").write_text("one\ntwo\nthree\n")
    (tmp_path / "api.log").write_text("four\n")
    assert logfiles.tail_lines(tmp_path / "api.log", 3) == ["two", "three", "four"]
    assert logfiles.tail_lines(tmp_path / "missing.log", 3) == []


async def test_follow_prints_new_lines_across_truncation(tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    log.write_text("old\n")
    stop = asyncio.Event()
    seen: list[str] = []

    async def reader() -> None:
        async for line in logfiles.follow([("api", log)], tail=1, follow=True, stop=stop):
            seen.append(line.text)

    task = asyncio.create_task(reader())

    async def until(n: int) -> None:
        async with asyncio.timeout(5):
            while len(seen) < n:
                await asyncio.sleep(0.01)

    await until(1)
    with log.open("a") as fh:
        fh.write("new\npart")
    await until(2)
    log.write_text("")  # rotated (copy-then-truncate)
    with log.open("a") as fh:
        fh.write("fresh\n")
    await until(3)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert seen == ["old", "new", "fresh"]


def test_a_full_disk_drops_whole_writes_and_says_so_when_space_returns(tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    saved = os.dup(fd)
    full = os.open("/dev/full", os.O_WRONLY)  # every write: ENOSPC
    try:
        out = Appender(fd)
        assert out.write(b"before\n")
        os.dup2(full, fd)
        assert not out.write(b"one\ntwo\n") and not out.write(b"three")
        assert out.dropped is not None and (out.dropped.lines, out.dropped.size) == (3, 13)
        assert "No space left on device" in out.dropped.reason
        os.dup2(saved, fd)  # space again
        assert out.write(b"after\n")
        lines = log.read_text().splitlines()
        assert lines[0] == "before" and lines[2] == "after"
        assert lines[1].startswith("[unistack] 3 lines of output (13 bytes) dropped between ")
        assert lines[1].endswith(": No space left on device")
        assert (out.total_lines, out.dropped) == (3, None)
    finally:
        for each in (fd, saved, full):
            os.close(each)


def test_the_daemons_stream_never_raises_on_a_full_disk() -> None:
    full = os.open("/dev/full", os.O_WRONLY)
    try:
        stream = AppendStream(Appender(full))
        assert stream.write("Traceback (most recent call last):\n") == 35
        stream.flush()
        assert stream.appender.total_lines == 1
    finally:
        os.close(full)
