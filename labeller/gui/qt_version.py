"""PySide6 versions the app refuses to run on, and why (checked before any window opens).

PySide6 6.12.0 drops one reference to the value a Python override of a C++ virtual
returns (each `paintEvent`, `QRunnable.run`, `QUndoCommand.undo`...); on CPython 3.11
the interpreter aborts after a few thousand repaints ("Fatal Python error:
none_dealloc"), losing unsaved work. pyproject.toml excludes it; this catches an
environment that has it anyway.
"""

from __future__ import annotations

BROKEN_PYSIDE6 = ("6.12.0",)
FIX = "pip install 'PySide6-Essentials!=6.12.0'"


def pyside6_problem() -> tuple[str, str] | None:
    """(what, why) the installed PySide6 cannot run the app, or None when it can."""
    import PySide6

    version = PySide6.__version__
    if version in BROKEN_PYSIDE6:
        return (f"PySide6 {version}",
                "this version crashes the app after a few thousand repaints "
                f"(a reference-counting bug); install another one: {FIX}")
    return None
