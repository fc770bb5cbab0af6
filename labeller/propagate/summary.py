"""What a run did: `PropagateSummary` (its `format()` is what `labeller propagate` prints).

Per object: frames in view and visible, mean visibility, median score, flags, the colour
check's suspected flips and undecidable frames, and ICP refinements, all read back from
the finished labels.h5.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labeller.formats.labels import COLOUR_FLAGGED, COLOUR_UNDECIDABLE, Labels
from labeller.propagate.config import PropagateConfig


@dataclass
class ObjectSummary:
    """One object over the run (counts are frames)."""

    id: int
    class_name: str
    frames_in_view: int  # px_count_image > 0 (some of it inside the image)
    frames_visible: int  # visib_fract >= 0.1
    mean_visib_fract: float  # over frames in view
    median_score: float  # over frames with a score
    flagged: int
    refined: int
    colour_flagged: int = 0  # colour check: a suspected 180-degree flip (also in `flagged`)
    colour_undecidable: int = 0  # colour check: the print looks the same turned


@dataclass
class PropagateSummary:
    """What a run did; `format()` is the text `labeller propagate` prints."""

    scene: Path
    labels_path: Path
    n_frames: int
    n_labelled: int
    skipped: list[tuple[int, str]]
    objects: list[ObjectSummary]
    flagged_pairs: int
    flagged_frames: list[int]
    overlays: list[Path]
    refine: str
    workers: int
    resumed_frames: int
    computed_frames: int
    seconds: float
    flag_min_score: float
    flag_min_visib: float

    @property
    def frames_per_s(self) -> float:
        return self.computed_frames / self.seconds if self.seconds > 0 else float("nan")

    def format(self) -> str:
        head = (f"labelled {self.n_labelled} of {self.n_frames} frames, {len(self.objects)} "
                f"object(s), refine {self.refine}: ")
        if self.computed_frames:
            head += (f"{self.computed_frames} computed by {self.workers} worker(s) in "
                     f"{self.seconds:.1f} s ({self.frames_per_s:.1f} frames/s)")
            if self.resumed_frames:
                head += f", {self.resumed_frames} resumed from an interrupted run"
        else:
            head += (f"all reused from an earlier run with the same inputs ({self.seconds:.1f} s; "
                     "--restart recomputes)")
        lines = [head]
        if self.skipped:
            reasons: dict[str, list[int]] = {}
            for t, r in self.skipped:
                reasons.setdefault(r, []).append(t)
            for r, ts in reasons.items():
                shown = ", ".join(str(t) for t in ts[:10]) + (f", … ({len(ts)} in all)" if len(ts) > 10 else "")
                lines.append(f"skipped {len(ts)} frame(s): {shown}: {r}")
        else:
            lines.append("skipped 0 frames")
        lines.append(f"flagged {self.flagged_pairs} object-frame(s) in {len(self.flagged_frames)} "
                     f"frame(s) (score < {self.flag_min_score:g} on >= {self.flag_min_visib:g} of "
                     f"the object)" + (f"; overlays of the worst {len(self.overlays)} in "
                                       f"{self.overlays[0].parent}" if self.overlays else ""))
        w = max([len(o.class_name) for o in self.objects] + [5])
        lines.append(f"  {'id':>4} {'class':<{w}} {'in view':>8} {'visible':>8} {'visib':>6} "
                     f"{'score':>6} {'flagged':>8} {'flips':>6} {'undec.':>6}"
                     + (f" {'refined':>8}" if self.refine != "none" else ""))
        for o in self.objects:
            sc = "-" if not np.isfinite(o.median_score) else f"{o.median_score:.2f}"
            vf = "-" if not np.isfinite(o.mean_visib_fract) else f"{o.mean_visib_fract:.2f}"
            lines.append(f"  {o.id:>4} {o.class_name:<{w}} {o.frames_in_view:>8} {o.frames_visible:>8} "
                         f"{vf:>6} {sc:>6} {o.flagged:>8} {o.colour_flagged:>6} "
                         f"{o.colour_undecidable:>6}"
                         + (f" {o.refined:>8}" if self.refine != "none" else ""))
        lines.append("  (in view: frames where the object projects into the image; visible: "
                     "visib_fract >= 0.1; visib: mean visib_fract in view; score: median; flips: frames the "
                     "colour check suspects a 180-degree turn; undec.: frames it cannot decide)")
        lines.append(f"wrote {self.labels_path}")
        return "\n".join(lines)


def summarise(labels: Labels, cfg: PropagateConfig, overlays: list[Path], resumed: int,
               computed: int, seconds: float, workers: int) -> PropagateSummary:
    """The summary of a finished file: `resumed` frames came from an earlier run,
    `computed` were labelled by `workers` processes in `seconds` (the whole run)."""
    A = labels.arrays
    objs = []
    for i, o in enumerate(labels.objects):
        inview = A["px_count_image"][:, i] > 0
        sc = A["score"][:, i]
        objs.append(ObjectSummary(
            o.id, o.class_name, int(inview.sum()), int((A["visib_fract"][:, i] >= 0.1).sum()),
            float(A["visib_fract"][inview, i].mean()) if inview.any() else float("nan"),
            float(np.median(sc[np.isfinite(sc)])) if np.isfinite(sc).any() else float("nan"),
            int(A["flagged"][:, i].sum()), int(A["refined"][:, i].sum()),
            int((A["colour_state"][:, i] == COLOUR_FLAGGED).sum()),
            int((A["colour_state"][:, i] == COLOUR_UNDECIDABLE).sum())))
    fl = A["flagged"]
    return PropagateSummary(
        scene=Path(cfg.scene), labels_path=labels.path, n_frames=labels.n_frames,
        n_labelled=len(labels.frame_ids), skipped=sorted(labels.skipped.items()), objects=objs,
        flagged_pairs=int(fl.sum()), flagged_frames=[int(t) for t in labels.frame_ids[fl.any(1)]]
        if fl.size else [], overlays=overlays, refine=labels.refine, workers=workers,
        resumed_frames=resumed, computed_frames=computed, seconds=seconds,
        flag_min_score=cfg.flag_min_score, flag_min_visib=cfg.flag_min_visib)


def summary_json(s: PropagateSummary) -> str:
    """The summary as JSON (for scripts and the demo)."""
    d = dataclasses.asdict(s)
    return json.dumps(d, default=str, indent=2)
