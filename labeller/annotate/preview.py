"""The propagation preview: what `labeller propagate` would flag, per frame and object.

`compute_preview` scores every posed frame on the fly (no ICP), with the colour check
(flip QA, `labeller.geometry.colour_consistency`) of textured objects; `read_preview`
reads the same table from `labels/labels.h5` when that file was computed from the
current poses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labeller.annotate.refine import FLAG_MIN_SCORE, FLAG_MIN_VISIB, PosedObject, scene_labeller
from labeller.core.progress import ProgressFn
from labeller.formats.labels import COLOUR_STATE_NAMES, flag_rule
from labeller.formats.scene import Scene


@dataclass
class Preview:
    """Per-frame, per-object depth-consistency of the propagated poses.

    frame_ids (F,) frames with a camera pose; ids (O,) object ids; score, score_fract
    (F, O) float; flagged (F, O) bool (labeller.formats.labels.flag_rule, depth or colour);
    source: "labels.h5" or "computed"; colour_score (F, O) float (NaN: not computed) and
    colour_state (F, O) uint8 (labeller.formats.labels.COLOUR_STATE_NAMES): the colour
    check (None: all not computed)."""

    frame_ids: list[int]
    ids: list[int]
    score: np.ndarray
    score_fract: np.ndarray
    flagged: np.ndarray
    source: str
    row: dict[int, int] = field(default_factory=dict)
    colour_score: np.ndarray | None = None
    colour_state: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.row = {t: r for r, t in enumerate(self.frame_ids)}
        shape = np.asarray(self.score).shape
        if self.colour_score is None:
            self.colour_score = np.full(shape, np.nan, np.float32)
        if self.colour_state is None:
            self.colour_state = np.zeros(shape, np.uint8)

    def colour_of(self, t: int) -> dict[int, tuple[float, str]]:
        """{obj_id: (colour score, colour state name)} in frame t (empty when t has no row)."""
        r = self.row.get(int(t))
        if r is None:
            return {}
        assert self.colour_score is not None and self.colour_state is not None
        return {i: (float(self.colour_score[r, k]), COLOUR_STATE_NAMES[int(self.colour_state[r, k])])
                for k, i in enumerate(self.ids)}

    def colour_text(self, t: int, obj_id: int) -> str:
        """What the colour check says of object obj_id in frame t, e.g. "colour 0.83 ok",
        "colour 0.05 flip suspected", "colour: no texture"; "" when t has no row."""
        c = self.colour_of(t).get(obj_id)
        if c is None:
            return ""
        score, state = c
        return f"colour {score:.2f} {state}" if np.isfinite(score) else f"colour: {state}"

    def n_colour_flagged(self) -> int:
        """Object-frames whose colour check suspects a 180-degree flip."""
        from labeller.formats.labels import COLOUR_FLAGGED

        return int((np.asarray(self.colour_state) == COLOUR_FLAGGED).sum())

    def flagged_frames(self) -> list[int]:
        rows = np.flatnonzero(np.asarray(self.flagged).any(axis=1))
        return [self.frame_ids[int(r)] for r in rows]

    def next_flagged(self, t: int, direction: int = 1) -> int | None:
        c = [f for f in self.flagged_frames() if (f - t) * direction > 0]
        return (min(c) if direction > 0 else max(c)) if c else None

    def object_state(self, t: int) -> dict[int, tuple[float, bool]]:
        """{obj_id: (score, flagged)} in frame t (empty when t has no row)."""
        r = self.row.get(int(t))
        if r is None:
            return {}
        return {i: (float(self.score[r, k]), bool(self.flagged[r, k]))
                for k, i in enumerate(self.ids)}


def compute_preview(scene: Scene, objects: Sequence[PosedObject],
                    progress: ProgressFn | None = None, colour: bool = True) -> Preview | None:
    """Score every posed frame on the fly (what `labeller propagate` would flag, without
    ICP; with the colour check unless `colour` is False). progress(done, total)
    returning False stops: None is returned."""
    traj = scene.trajectory
    frames = [t for t in range(scene.n_frames) if t in traj]
    n = len(objects)
    score = np.full((len(frames), n), np.nan, np.float32)
    fract = np.zeros((len(frames), n), np.float32)
    c_score = np.full((len(frames), n), np.nan, np.float32)
    c_state = np.zeros((len(frames), n), np.uint8)
    fl = scene_labeller(scene, objects) if n else None
    for r, t in enumerate(frames):
        if fl is not None:
            T_cam_obj, views, *_ = fl.analyse(np.asarray(traj[t], np.float64), scene.depth(t))
            rgb = scene.rgb(t) if colour else None
            for k, v in enumerate(views):
                score[r, k] = v.m.score
                fract[r, k] = v.m.score_fract
                if rgb is not None:
                    c = fl.colour(k, v, T_cam_obj[k], rgb)
                    c_score[r, k], c_state[r, k] = c.score, c.state
        if progress is not None and progress(r + 1, len(frames)) is False:
            return None
    flagged = flag_rule(score, fract, FLAG_MIN_SCORE, FLAG_MIN_VISIB, c_state)
    return Preview(frames, [o.obj_id for o in objects], score, fract, flagged, "computed",
                   colour_score=c_score, colour_state=c_state)


def read_preview(labels_path: Path, objects: Sequence[PosedObject],
                 trajectory_sha256: str | None) -> tuple[Preview | None, str]:
    """(the preview from labels.h5, "") when it was computed from these exact poses and
    trajectory; otherwise (None, why it is stale or unreadable)."""
    from labeller.core.errors import BadInput
    from labeller.formats.labels import Labels

    if not Path(labels_path).is_file():
        return None, "no labels/labels.h5 yet"
    try:
        with Labels.open(labels_path) as lab:
            if trajectory_sha256 and lab.attrs.get("trajectory_sha256") != trajectory_sha256:
                return None, "labels.h5 was computed against another trajectory"
            mine = {o.obj_id: np.asarray(o.T_world_obj, np.float64) for o in objects}
            theirs = {o.id: np.asarray(o.T_world_obj, np.float64) for o in lab.objects}
            if mine.keys() != theirs.keys() or any(
                    not np.allclose(mine[i], theirs[i], atol=1e-9) for i in mine):
                return None, "the annotations changed since labels.h5 was computed"
            order = [o.id for o in lab.objects]
            return Preview([int(t) for t in lab.frame_ids], order,
                           lab.arrays["score"].astype(np.float32),
                           lab.arrays["score_fract"].astype(np.float32),
                           lab.arrays["flagged"].astype(bool), "labels.h5",
                           colour_score=lab.arrays["colour_score"].astype(np.float32),
                           colour_state=lab.arrays["colour_state"].astype(np.uint8)), ""
    except BadInput as exc:
        return None, str(exc)
