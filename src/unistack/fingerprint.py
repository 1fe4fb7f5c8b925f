"""The fingerprint of the unistack code on disk: the package's version and folder, and every module and JSON file
in it (its path, size, inode, modification and change times).

Standard library only (``os``, ``zlib``), so the read-only verbs' fast path can tell a cached load was made by this
code, and a client can tell that a daemon runs older code (``control.state.code_fingerprint``). A file rewritten
within one tick of the clock still changes its change time or inode (``os.replace``) unless it keeps its size,
inode and both times: an edit in place of the same length in the same tick, which nobody makes to an installed
package. JSON counts as well as the modules: the schema the loader checks against is JSON (the dashboard's page,
served as it is on disk, does not). Computed once per process. Never caches anything else.
"""

from __future__ import annotations

import os
import zlib

from unistack import __version__

_fingerprint: str | None = None


def code_fingerprint() -> str:
    """``compute()``, once per process."""
    global _fingerprint
    if _fingerprint is None:
        _fingerprint = compute()
    return _fingerprint


def compute() -> str:
    """A checksum of the version, the package folder and each file's stat (walked with ``os.scandir``)."""
    package = os.path.dirname(os.path.realpath(__file__))
    entries = [__version__, package]
    folders = [package]
    while folders:
        folder = folders.pop()
        with os.scandir(folder) as listing:
            for entry in listing:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name != "__pycache__":
                        folders.append(entry.path)
                elif entry.name.endswith((".py", ".json")):
                    path = entry.path[len(package) :]
                    try:
                        s = entry.stat()
                    except OSError:  # gone since the listing (an editor's temporary file)
                        entries.append(f"{path}:gone")
                        continue
                    entries.append(f"{path}:{s.st_size}:{s.st_ino}:{s.st_mtime_ns}:{s.st_ctime_ns}")
    text = "\n".join(sorted(entries)).encode("utf-8", "surrogateescape")
    return f"{zlib.crc32(text):08x}{zlib.adler32(text):08x}"
