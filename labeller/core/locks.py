"""Advisory locks that make a second run on the same scene or output stop at once.

`exclusive_lock(path, subject, busy)` holds an `flock` on `path` for the block; a second
holder gets `BadInput(subject, busy)` immediately rather than waiting (two runs writing
one output would only spoil each other's work). The kernel releases the lock when the
process dies, so a killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from labeller.core.errors import BadInput


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, subject: str | os.PathLike, busy: str,
                   remove: bool = False) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (created when missing) for the block.

    busy: the message (about `subject`) when another process holds it. remove: delete the
    lock file on release (for a lock beside a user's folder); the lock is then taken only
    on a file still at `path`, so a process that opened a file its holder then removed
    retries on the new one instead of holding a lock nobody else sees.
    """
    path = Path(path)
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise BadInput(subject, busy) from None
        if not remove or _same_file(fd, path):
            break
        os.close(fd)  # removed by its previous holder: lock the file now at `path`
    try:
        yield
    finally:
        if remove:
            with contextlib.suppress(OSError):
                path.unlink()  # while still held: no one can lock this file any more
        os.close(fd)  # releases the lock


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)
