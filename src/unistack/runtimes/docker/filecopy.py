"""Copying host files into a container and deleting paths in it, as the container's user: ``develop.watch``'s
sync, done with the docker SDK.

Owns the tar sent with ``put_archive`` (every entry owned by the container's user, so a service that runs as
10001 can change what it is given; files read whole when small, so a file that changes meanwhile cannot break
the archive), finding that user (``Config.User``, names looked up in the container's /etc/passwd and /etc/group),
and deleting with ``rm -rf`` through exec as root (the files may be root's, as ``put_archive`` writes as root).
Docker errors become RuntimeFailure here. Never decides what to copy.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from unistack.errors import RuntimeFailure
from unistack.runtimes.docker.engine import Errors, failure

IN_MEMORY = 16 << 20  # files up to this size are read whole before they go into the tar


def parse_user(user: str, passwd: str = "", group: str = "") -> tuple[int, int] | None:
    """The uid and gid of a container's ``Config.User`` (``""``, ``10001``, ``10001:10001``, ``app:app``), names
    looked up in the container's /etc/passwd and /etc/group texts; None when a name is not there."""
    name, _, grp = user.partition(":")
    accounts = {f[0]: (int(f[2]), int(f[3])) for f in _table(passwd, 4)}
    primary = dict(accounts.values())
    if not name:
        uid, gid = 0, 0
    elif name.isdigit():
        uid = int(name)
        gid = primary.get(uid, 0)  # Docker's rule: a uid without an account runs with group 0
    elif name in accounts:
        uid, gid = accounts[name]
    else:
        return None
    if grp.isdigit():
        gid = int(grp)
    elif grp:
        groups = {f[0]: int(f[2]) for f in _table(group, 3)}
        if grp not in groups:
            return None
        gid = groups[grp]
    return uid, gid


def _table(text: str, width: int) -> list[list[str]]:
    rows = [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]
    return [r for r in rows if len(r) >= width and all(r[i].isdigit() for i in range(2, width))]


def container_owner(client: Any, container: str) -> tuple[str, tuple[int, int] | None]:
    """The container's ``Config.User`` and the uid/gid it stands for (None: a name its files do not know)."""
    info = _call("inspect the container", lambda: client.api.inspect_container(container))
    user = str((info.get("Config") or {}).get("User") or "")
    name, _, group = user.partition(":")
    passwd = groups = ""
    if name and not (name.isdigit() and group.isdigit()):  # a name, or a uid whose group is its account's
        passwd = _read(client, container, "/etc/passwd")
        if group and not group.isdigit():
            groups = _read(client, container, "/etc/group")
    return user, parse_user(user, passwd, groups)


def _read(client: Any, container: str, path: str) -> str:
    try:
        stream, _ = client.api.get_archive(container, path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.extractfile(tar.getmembers()[0])
            return member.read().decode("utf-8", "replace") if member is not None else ""
    except (*Errors, tarfile.TarError, IndexError):
        return ""


def copy_into(client: Any, container: str, entries: Sequence[tuple[str, Path]], owner: tuple[int, int]) -> int:
    """Copy each host path to its absolute container path (parents before children); returns how many entries
    went in (paths gone since, sockets and devices are left out)."""
    with tempfile.TemporaryFile() as out:
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            count = sum(_add(tar, host, name.lstrip("/"), owner) for name, host in entries)
        out.seek(0)
        if count:
            _call("copy files into the container", lambda: client.api.put_archive(container, "/", out))
    return count


def _add(tar: tarfile.TarFile, host: Path, name: str, owner: tuple[int, int]) -> bool:
    """One entry: a folder, a symbolic link or a file."""
    try:
        info = tar.gettarinfo(str(host), arcname=name)
        if info is None or not (info.isdir() or info.issym() or info.isfile()):
            return False
        info.uid, info.gid = owner
        info.uname = info.gname = ""
        if not info.isfile():
            tar.addfile(info)
            return True
        with host.open("rb") as handle:
            if info.size > IN_MEMORY:
                tar.addfile(info, handle)
                return True
            data = handle.read()
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        return True
    except (FileNotFoundError, NotADirectoryError):
        return False  # gone since the change was seen: the next change deletes it


def delete_in(client: Any, container: str, paths: Sequence[str]) -> None:
    """``rm -rf`` the absolute container paths, as root; never ``/``."""
    argv = ["rm", "-rf", "--", *(p for p in paths if p.strip("/"))]
    if len(argv) == 3:
        return

    def run() -> tuple[int, str]:
        exec_id = client.api.exec_create(container, argv, user="0", stdout=True, stderr=True)["Id"]
        output = client.api.exec_start(exec_id)
        code = client.api.exec_inspect(exec_id).get("ExitCode")
        return int(code or 0), bytes(output).decode("utf-8", "replace").strip()

    code, output = _call("delete files in the container", run)
    if code != 0:
        raise RuntimeFailure(f"cannot delete files in the container: rm exited with {code}: {output[-300:]}")


def _call(doing: str, call: Callable[[], Any]) -> Any:
    try:
        return call()
    except Errors as exc:
        raise failure(f"cannot {doing}", exc) from exc
