"""The guard against re-tracking under saved annotations (`labeller track`, `--from`).

Saved object poses are expressed in the world frame of the trajectory that
annotations.json names by its sha256; replacing that trajectory would move the world
under them.
"""

from __future__ import annotations

import json

from labeller.core.errors import BadInput
from labeller.core.fileio import sha256_file
from labeller.formats.annotations import AnnotationDocument
from labeller.formats.scene import ScenePaths


def check_annotations_guard(paths: ScenePaths, force: bool) -> str | None:
    """Refuse (BadInput) to replace a trajectory that saved annotations refer to.

    Returns a note when `force` overrides the guard, else None.
    """
    if not (paths.annotations.is_file() and paths.trajectory.is_file()):
        return None
    current = sha256_file(paths.trajectory)
    try:
        ref = AnnotationDocument.read(paths.annotations).trajectory_sha256
    except BadInput:
        try:
            ref = json.loads(paths.annotations.read_text()).get("trajectory_sha256")
        except (OSError, ValueError, AttributeError):
            ref = current  # unreadable: assume it refers, to be safe
    if ref != current:
        return None
    if force:
        return (f"{paths.annotations}: refers to the trajectory being replaced (--force); "
                "its object poses are in the old world frame and need checking")
    raise BadInput(paths.annotations,
                   "its trajectory_sha256 matches the current trajectory.txt: the saved object "
                   "poses are expressed in that trajectory's world frame, and tracking again "
                   "would move it under them. Pass --force to replace trajectory.txt anyway "
                   "(then re-check the annotations in the GUI)")
