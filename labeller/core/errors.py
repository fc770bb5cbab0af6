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


class Cancelled(LabellerError):
    """A stage stopped because its progress callback returned False (the user cancelled).

    The one cancellation exception of the project: every stage raises it (or returns a
    partial result, where the stage documents so), and nothing half-written stays in
    place, since every writer goes through `labeller.core.fileio`'s atomic helpers.
    """


class ConfigError(BadInput):
    """A stage setting is out of range. Names the config field (``TrackConfig.voxel_m``);
    the command line shows the option that sets it instead (``--voxel``)."""

    def __init__(self, config: type | object, field: str, problem: str):
        cls = config if isinstance(config, type) else type(config)
        self.config_class = cls
        self.field = field
        super().__init__(f"{cls.__name__}.{field}", problem)
