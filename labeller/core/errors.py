"""One small error hierarchy for everything the tool reads or is given.

`BadInput` and its subclasses are the user's problem (a file, a field, an argument):
the command line prints their one-line message and exits with code 2. Anything else is
ours and exits with code 1.
"""

from __future__ import annotations

import os


class LabellerError(Exception):
    """Base of every error the tool raises on purpose."""


class BadInput(LabellerError):
    """Input the user can fix. The message names the file (or argument) and the problem.

    `BadInput(path, problem)` renders as ``"<path>: <problem>"``; `BadInput(problem)`
    (no path) renders as the problem alone.
    """

    def __init__(self, where: str | os.PathLike | None, problem: str | None = None):
        if problem is None:
            where, problem = None, str(where)
        self.path = None if where is None else os.fspath(where)
        self.problem = problem
        super().__init__(problem if self.path is None else f"{self.path}: {problem}")


class SceneError(BadInput):
    """A scene directory (frames, camera.json, trajectory.txt) is malformed."""


class FormatError(BadInput):
    """A file of one of our formats (annotations, labels, PROPS pickles, ...) is malformed."""


class ModelError(BadInput):
    """An object model is missing, unreadable or in the wrong units."""
