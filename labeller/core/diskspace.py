"""Checking for room before a library that cannot survive a failed write writes a file.

HDF5 is left in an undefined state by a write that fails half-way (a full disk or a
file-size limit): later calls fail with unrelated errors or kill the process (SIGSEGV,
SIGBUS). Its writers therefore ask `check_room` first, with the bytes they are about to
add, and stop with a clean disk error (`OSError` with ENOSPC or EFBIG naming the file,
which the command line turns into one line, exit 2) before HDF5 sees a failing write.
"""

from __future__ import annotations

import errno
import os
import resource
import shutil
from pathlib import Path

# What HDF5 adds on top of the payload: superblock, object headers, chunk indices and the
# metadata cache flushed at close (a few KB per dataset); generous on purpose.
HDF5_OVERHEAD_BYTES = 256 * 1024


def _existing_folder(path: Path) -> Path:
    p = path.parent
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def file_size_limit() -> int | None:
    """This process's largest allowed file (RLIMIT_FSIZE soft limit), None when unlimited."""
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def check_room(path: str | os.PathLike, add_bytes: int, size_now: int | None = None) -> None:
    """Raise OSError (EFBIG or ENOSPC, naming `path`) unless `path` can grow by `add_bytes`.

    size_now: the file's current size in bytes (read from the file when None; 0 when it
    does not exist). Checks the file-size limit and the free space of the file system
    that holds `path` (or would hold it).
    """
    path = Path(path)
    if size_now is None:
        try:
            size_now = path.stat().st_size
        except OSError:
            size_now = 0
    add_bytes = max(0, int(add_bytes))
    limit = file_size_limit()
    if limit is not None and size_now + add_bytes > limit:
        raise OSError(errno.EFBIG, os.strerror(errno.EFBIG), str(path))
    try:
        free = shutil.disk_usage(_existing_folder(path)).free
    except OSError:
        return  # cannot tell; the write itself will say
    if add_bytes > free:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
