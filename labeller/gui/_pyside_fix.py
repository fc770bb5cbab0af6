"""Guard against a reference-counting bug of PySide6 6.12.0 on CPython < 3.12.

PySide6 6.12.0 drops one reference to the value a Python override of a C++ virtual
returns (every `paintEvent`, `mouseMoveEvent`, `QRunnable.run`, `QUndoCommand.undo` that
returns None costs None one reference; signals delivered to lambdas cost True one). On
CPython 3.11 None, True and False are ordinary objects with ~5,000 references at start,
so after a few thousand repaints the interpreter aborts with "Fatal Python error:
none_dealloc" — the app would crash within minutes of dragging and lose unsaved work.
(6.11.3 does not have the bug; on CPython >= 3.12 these singletons are immortal and the
bug is harmless.)

The guard gives the three singletons a large reserve of references once (they are never
freed anyway, so extra references cost nothing) and tops it up from a timer. The real
fix is a PySide6 that is not 6.12.0; see docs/gui.md.
"""

from __future__ import annotations

import ctypes
import platform
import sys

# Versions known to have the bug (tests/gui/test_pyside_fix.py detects it on others).
AFFECTED = ("6.12.0",)
RESERVE = 1 << 30  # at 10,000 lost references a second this lasts more than a day
LOW_WATER = 1 << 29


def affected() -> bool:
    import PySide6

    return (platform.python_implementation() == "CPython" and sys.version_info < (3, 12)
            and PySide6.__version__ in AFFECTED)


def _refcnt(obj) -> ctypes.c_ssize_t:
    # ob_refcnt is the first field of every object in a (non-debug) CPython < 3.12 build.
    return ctypes.c_ssize_t.from_address(id(obj))


def top_up() -> None:
    """Give None, True and False RESERVE more references when they run low."""
    for obj in (None, True, False):
        r = _refcnt(obj)
        if r.value < LOW_WATER:
            r.value += RESERVE


_installed = False


def install() -> bool:
    """Install the guard when this PySide6/CPython pair needs it; True if installed."""
    global _installed
    if _installed:
        return True
    if not affected():
        return False
    top_up()
    _installed = True
    return True


def start_timer(parent) -> None:
    """Re-check the reserve every minute for as long as `parent` (a QObject) lives."""
    if not _installed:
        return
    from PySide6.QtCore import QTimer

    t = QTimer(parent)
    t.setInterval(60_000)
    t.timeout.connect(top_up)
    t.start()
