"""Atomic file writing, image I/O and hashing shared by every codec.

Every file the tool writes goes to a temporary path beside its destination and is
renamed into place with `os.replace`, so an interrupted run leaves the previous file
intact (the rename is atomic on one file system). A replaced file keeps its mode, and a
destination that is a symbolic link is written through (its target is replaced, the link
stays), as editors do. The bytes are checked before the rename: a short write (a full
disk a library did not report) never replaces a good file.

Output folders (`atomic_dir`) are built in a temporary folder and swapped with the
previous one in a single `renameat2(RENAME_EXCHANGE)` on Linux, so the old or the new
folder is at DIR whenever the process dies. Where the file system cannot exchange, the old
folder is moved aside to `.DIR.old` first; the next `atomic_dir` on DIR (every writer of a
folder goes through it) puts `.DIR.old` back when DIR is missing (`recover_dir`).

Temporary names carry the host and process id (``.NAME.<host>-p<pid>.XXXXXXXX.tmp``): the
next write into the same folder (once per process) and the next replace of the same
folder remove the temporaries of runs they can prove are dead (this host, no such
process).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from labeller.core.errors import BadInput, FormatError

# OpenCV logs its own warnings for broken files to stderr; we report them ourselves,
# one line, naming the file.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_FATAL)

log = logging.getLogger(__name__)

# Errors of the disk rather than of the tool: the command line names the path and exits 2.
DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _public(path: Path, mode: int) -> None:
    """mkstemp/mkdtemp create 0600/0700; give the result the permissions a plain
    open()/mkdir() would have had under the user's umask."""
    os.chmod(path, mode & ~_umask())


# ------------------------------------------------------------------ temporary names
def _host_tag() -> str:
    return re.sub(r"[^A-Za-z0-9]", "-", socket.gethostname() or "host")


def _temp_prefix(name: str) -> str:
    """``.NAME.<host>-p<pid>.``: the start of a temporary name beside NAME."""
    return f".{name}.{_host_tag()}-p{os.getpid()}."


def temp_dir_beside(dest: str | os.PathLike, suffix: str = ".tmp") -> Path:
    """A new empty folder ``.NAME.<host>-p<pid>.XXXXXXXX<suffix>`` beside `dest` (which
    need not exist): a temporary the next writer of `dest` removes once this process is
    dead (`remove_dead_temps`)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=_temp_prefix(dest.name), suffix=suffix, dir=dest.parent))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def dead_run_temps(folder: Path, name: str | None = None) -> list[Path]:
    """Temporaries in `folder` (of `folder/name` only, when given) left by runs that are
    provably dead: named by this host and a process id that no longer exists. Names
    without an owner (older versions) and those of live processes are never listed."""
    owner = re.compile(rf"\.{re.escape(_host_tag())}-p(?P<pid>\d+)\.[a-z0-9_]+\.")
    prefix = "." if name is None else f".{name}."
    found = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        m = owner.search(entry.name, len(prefix) - 1)
        if m is None or (name is not None and m.start() != len(prefix) - 1):
            continue
        pid = int(m["pid"])
        if pid != os.getpid() and not _pid_alive(pid):
            found.append(Path(entry.path))
    return found


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


# Folders whose dead temporaries this process has already removed: one scan per folder
# and process, not one per file written (a scene folder holds thousands of frames).
_swept: set[tuple[str, str | None]] = set()


def remove_dead_temps(folder: str | os.PathLike, name: str | None = None,
                      once: bool = True) -> list[Path]:
    """Remove the temporaries of dead runs in `folder` (of `folder/name` only, when given;
    `dead_run_temps`) and return them. With `once` a folder is scanned once per process."""
    key = (os.path.abspath(folder), name)
    if once and key in _swept:
        return []
    _swept.add(key)
    stale = dead_run_temps(Path(folder), name)
    for p in stale:
        log.debug("removing %s, left by a run that died", p)
        _remove(p)
    return stale


# ------------------------------------------------------------------ disk errors
def _free_bytes(path: Path) -> int | None:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def _size_text(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} bytes"  # pragma: no cover - the loop always returns


def disk_error_message(exc: BaseException) -> str | None:
    """A one-line "PATH: problem" for a disk error (full, quota, read-only, permission,
    file-size limit), with the free space for a full disk; None for any other error."""
    if not isinstance(exc, OSError):
        return None
    code, where = exc.errno, exc.filename
    if code is None:
        # HDF5 (h5py) reports the C library's errno inside its message
        m = re.search(r"errno = (\d+)", str(exc))
        code = int(m[1]) if m else None
        name = re.search(r"name = '([^']+)'", str(exc))
        where = name[1] if name else where
    if code not in DISK_ERRNOS:
        return None
    where = where if where is not None else "the output"
    where = os.fsdecode(where) if isinstance(where, (bytes, os.PathLike)) else str(where)
    if code in (errno.ENOSPC, errno.EDQUOT):
        free = _free_bytes(Path(where))
        room = "" if free is None else f" ({_size_text(free)} free there)"
        what = "no space left on the device" if code == errno.ENOSPC else "disk quota exceeded"
        return f"{where}: {what}{room}; free some space and rerun"
    if code == errno.EROFS:
        return f"{where}: the file system is read-only; write somewhere else"
    if code == errno.EFBIG:
        return f"{where}: file too large (a file-size limit or the file system's); write somewhere else"
    return f"{where}: permission denied"


def _name_path(exc: OSError, path: Path, tmp: Path | None = None) -> OSError:
    """`exc` naming what the user asked for: `path` when it names no file (a failed
    write() names none), and a file inside the temporary folder `tmp` by its place in
    `path` (the folder `tmp` becomes)."""
    if exc.errno not in DISK_ERRNOS:
        return exc
    name = exc.filename
    if name is None:
        name = str(path)
    elif tmp is not None:
        name = os.fsdecode(name)
        if name == str(tmp) or name.startswith(f"{tmp}{os.sep}"):
            name = str(path) + name[len(str(tmp)):]
    if name == exc.filename:
        return exc
    return type(exc)(exc.errno, exc.strerror or os.strerror(exc.errno), name)


def _short_write(path: Path, written: int, expected: int) -> OSError:
    """What a write that came out short is reported as: a full disk, naming the path."""
    return OSError(errno.ENOSPC, f"only {written} of {expected} bytes were written", str(path))


# ------------------------------------------------------------------ atomic files
def write_target(dest: str | os.PathLike) -> Path:
    """Where writing `dest` lands: the final target when `dest` is a symbolic link (the
    link stays a link), else `dest` itself."""
    dest = Path(dest)
    return Path(os.path.realpath(dest)) if dest.is_symlink() else dest


def _mode_for(dest: Path) -> int:
    """The mode a replacement of `dest` gets: the existing file's, else what open() would
    give under the umask."""
    try:
        return os.stat(dest).st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, suffix: str | None = None,
                min_size: int = 0) -> Iterator[Path]:
    """Yield a temporary path beside `dest`; on success rename it onto `dest`.

    The temporary file keeps `dest`'s suffix (or `suffix`) so libraries that pick a
    format from the extension (OpenCV, Open3D) still work. A file smaller than
    `min_size` bytes is not renamed (OSError ENOSPC naming `dest`: a writer that
    stopped short). The result keeps the mode of the file it replaces; a symbolic link
    at `dest` is written through. On an exception the temporary file is removed and
    `dest` is untouched; a disk error raised without a file name gets `dest`'s.
    """
    dest = write_target(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temps(dest.parent)
    sfx = dest.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(dest.stem), suffix=f".tmp{sfx}", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        try:
            yield tmp_path
            if min_size and tmp_path.exists():
                size = tmp_path.stat().st_size
                if size < min_size:
                    raise _short_write(dest, size, min_size)
            if tmp_path.exists():
                os.chmod(tmp_path, _mode_for(dest))
            os.replace(tmp_path, dest)
        except OSError as exc:
            named = _name_path(exc, dest)
            if named is exc:
                raise
            raise named from exc
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _write_file(f, data: bytes) -> None:
    """The one place the atomic helpers write bytes to an open file (tests put a
    fault-injecting writer here to play a full disk)."""
    f.write(data)


def atomic_write_bytes(dest: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `dest` atomically; the file's size is checked before the rename."""
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as f:
            _write_file(f, data)
            f.flush()
            os.fsync(f.fileno())
            size = os.fstat(f.fileno()).st_size
        if size != len(data):
            raise _short_write(write_target(dest), size, len(data))


def atomic_write_text(dest: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(dest, text.encode("utf-8"))


def atomic_write_json(dest: str | os.PathLike, obj, indent: int | None = 2) -> None:
    atomic_write_text(dest, json.dumps(obj, indent=indent) + "\n")


# ------------------------------------------------------------------ atomic folders
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_NO_EXCHANGE = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV}


@functools.cache
def _renameat2():
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True).renameat2
    except (OSError, AttributeError):  # no libc found, or a glibc older than 2.28
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def exchange_paths(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Swap `a` and `b` in one atomic step (Linux `renameat2(RENAME_EXCHANGE)`); both must
    exist. False where the platform or the file system cannot (nothing was changed).

    Raises the audit event ``labeller.fileio.exchange`` (a, b) first, as `os.replace`
    raises ``os.rename``, so crash tests can stop the process at it."""
    fn = _renameat2()
    if fn is None:
        return False
    sys.audit("labeller.fileio.exchange", os.fspath(a), os.fspath(b))
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in _NO_EXCHANGE:
        return False
    raise OSError(err, os.strerror(err), os.fspath(b))


def _old_dir(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.old")


def recover_dir(dest: str | os.PathLike) -> bool:
    """Repair what a replace of folder `dest` cut short, before anything else touches it.

    `dest` missing with `.DIR.old` present (killed between the two renames of the
    fallback): `.DIR.old` goes back to `dest`. Both present (killed while removing the
    old folder): `.DIR.old` is removed. Then the temporaries of dead runs beside `dest`
    are removed. Returns True when the previous folder was put back.
    """
    dest = Path(dest)
    old = _old_dir(dest)
    restored = False
    if old.is_dir() and not old.is_symlink():
        if not dest.exists() and not dest.is_symlink():
            os.replace(old, dest)
            restored = True
            log.warning("%s was missing after an interrupted replace; put back the previous "
                        "folder from %s", dest, old.name)
        else:
            shutil.rmtree(old, ignore_errors=True)
    remove_dead_temps(dest.parent, dest.name, once=False)
    return restored


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and next(path.iterdir(), None) is None


@contextlib.contextmanager
def atomic_dir(dest: str | os.PathLike, overwrite: bool = False,
               ours: Callable[[Path], bool] | None = None,
               what: str = "an output of this tool") -> Iterator[Path]:
    """Yield a temporary directory beside `dest`; on success it replaces `dest`.

    With `overwrite=False` an existing `dest` is an error (raised before any work). With
    `ours`, an existing non-empty `dest` is replaced only when `ours(dest)` is true
    (BadInput saying it is not `what` otherwise). A previous `dest` is swapped out in
    one atomic exchange where the file system allows it, else moved aside to `.DIR.old`
    first; `recover_dir` runs first, so an earlier run's cut-short replace is repaired.
    On an exception the temporary directory is removed and `dest` is untouched.
    """
    dest = Path(dest)
    recover_dir(dest)
    if dest.exists():
        if not overwrite:
            raise BadInput(dest, "already exists (pass --overwrite to replace it)")
        if ours is not None and not _is_empty_dir(dest) and not ours(dest):
            raise BadInput(dest, f"exists and is not {what}; refusing to replace it "
                                 "even with --overwrite")
    tmp = temp_dir_beside(dest)
    try:
        try:
            yield tmp
            _public(tmp, 0o777)
            _swap_into_place(tmp, dest)
        except OSError as exc:
            named = _name_path(exc, dest, tmp)
            if named is exc:
                raise
            raise named from exc
    finally:
        if tmp.exists() or tmp.is_symlink():
            _remove(tmp)  # after an exchange: the previous folder


def _swap_into_place(tmp: Path, dest: Path) -> None:
    """Put folder `tmp` at `dest`; a previous `dest` ends up at `tmp` or is removed."""
    if not dest.exists() and not dest.is_symlink():
        os.replace(tmp, dest)
    elif not exchange_paths(tmp, dest):
        old = _old_dir(dest)
        os.replace(dest, old)
        os.replace(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)


def read_json(path: str | os.PathLike) -> Any:
    """The JSON value in `path`: BadInput naming the file when it cannot be read,
    FormatError when the text is not JSON (or nested too deeply to parse)."""
    try:
        return json.loads(Path(path).read_text())
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise FormatError(path, f"not valid JSON ({exc})") from None
    except RecursionError:
        raise FormatError(path, "not valid JSON (nested too deeply)") from None
    except OSError as exc:
        raise BadInput(path, f"cannot read ({exc.strerror or exc})") from None


def read_json_object(path: str | os.PathLike, expected: str = "a JSON object") -> dict:
    """The JSON object (dict) in `path`; FormatError naming the file when the text is not
    JSON or its top level is not an object (`expected` says what it should be)."""
    d = read_json(path)
    if not isinstance(d, dict):
        raise FormatError(path, f"expected {expected}")
    return d


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def image_damage(data: bytes) -> str | None:
    """What is wrong with the bytes of a PNG or JPEG file, or None.

    OpenCV decodes a damaged file as far as it can and only logs the decoder's complaint,
    so the container is checked first: a PNG's chunk CRCs and its IEND chunk, a JPEG's
    start and end markers. (A JPEG has no checksum: damage inside its entropy-coded data
    cannot be seen.) Other formats: None, OpenCV decides.
    """
    if data.startswith(_PNG_SIGNATURE):
        pos, n = len(_PNG_SIGNATURE), len(data)
        while pos + 12 <= n:
            length = int.from_bytes(data[pos:pos + 4], "big")
            end = pos + 12 + length
            if end > n:
                return "PNG chunk runs past the end of the file"
            kind = data[pos + 4:pos + 8]
            if zlib.crc32(data[pos + 4:end - 4]) != int.from_bytes(data[end - 4:end], "big"):
                return f"PNG chunk {kind.decode('latin-1')!r} fails its CRC check"
            if kind == b"IEND":
                return None
            pos = end
        return "PNG file cut short (no IEND chunk)"
    if data.startswith(b"\xff\xd8"):
        if b"\xff\xd9" not in data[-64:]:
            return "JPEG file cut short (no end-of-image marker)"
    return None


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as stored: 8-bit colour as RGB (H, W, 3) uint8, 16-bit as is.

    Raises BadInput naming the file when it is missing or cannot be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise BadInput(path, "file not found")
    data = path.read_bytes()
    damage = image_damage(data)
    if damage:
        raise BadInput(path, f"damaged image ({damage})")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise BadInput(path, "unreadable image (not a valid PNG/JPEG)")
    if img.ndim == 3:
        if img.shape[2] == 4:
            img = img[:, :, :3]
        img = np.ascontiguousarray(img[:, :, ::-1])  # OpenCV stores BGR; we use RGB
    return img


def write_image(dest: str | os.PathLike, img: np.ndarray, atomic: bool = True) -> None:
    """Write an RGB (H, W, 3) uint8 or a single-channel uint8/uint16 image.

    The format follows the extension of `dest`; written atomically by default.
    """
    arr = np.asarray(img)
    if arr.ndim == 3:
        arr = np.ascontiguousarray(arr[:, :, ::-1])  # RGB -> OpenCV's BGR
    ext = Path(dest).suffix
    ok, buf = cv2.imencode(ext, arr)
    if not ok:
        raise OSError(f"{dest}: OpenCV could not encode the image")
    if atomic:
        atomic_write_bytes(dest, buf.tobytes())
    else:
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        with open(dest, "wb") as f:
            f.write(buf.tobytes())
