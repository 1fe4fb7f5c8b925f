"""When a backup in containers reads a volume from its folder on this machine (``readable_folder``, pure over
`docker volume inspect` and the engine's security options), and when it goes through the engine's archive."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from unistack.runtimes.docker.volume_folder import readable_folder


def created(folder: Path) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(folder.stat().st_ctime))


def volume(folder: Path, **changes: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"Driver": "local", "Options": None, "Mountpoint": str(folder), "CreatedAt": created(folder)}
    return {**info, **changes}


def test_the_local_drivers_own_folder_is_read_there(tmp_path: Path) -> None:
    assert readable_folder(volume(tmp_path), ["name=seccomp,profile=default"]) == tmp_path
    local_zone = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(tmp_path.stat().st_ctime))
    assert readable_folder(volume(tmp_path, CreatedAt=local_zone), []) == tmp_path


def test_anything_else_goes_through_the_engine(tmp_path: Path) -> None:
    assert readable_folder(volume(tmp_path), ["name=userns"]) is None  # owners remapped on the host
    assert readable_folder(volume(tmp_path), ["name=rootless"]) is None
    assert readable_folder(volume(tmp_path, Driver="nfs"), []) is None
    assert readable_folder(volume(tmp_path, Options={"type": "tmpfs", "device": "tmpfs"}), []) is None
    assert readable_folder(volume(tmp_path, Mountpoint=str(tmp_path / "absent")), []) is None  # another machine's
    assert readable_folder(volume(tmp_path, Mountpoint=""), []) is None
    (tmp_path / "file").write_text("x")
    assert readable_folder(volume(tmp_path, Mountpoint=str(tmp_path / "file")), []) is None  # not a folder
    earlier = tmp_path.stat().st_ctime - 3600
    os.utime(tmp_path, (earlier, earlier))  # mtime back an hour; the change time stays now
    other = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(earlier - 7200))
    assert readable_folder(volume(tmp_path, CreatedAt=other), []) is None  # a folder of that name, not the engine's
    assert readable_folder(volume(tmp_path, CreatedAt="yesterday"), []) is None
