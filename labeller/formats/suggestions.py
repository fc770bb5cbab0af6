"""`suggestions.json`: initial object poses from `labeller init`, beside annotations.json.

Format::

    {"format": "labeller-suggestions", "version": 1, "trajectory_sha256": "...",
     "suggestions": [{"class": "mug", "model": "models/mug.ply",
                      "T_world_obj": [[...4x4...]], "source": "estimates",
                      "status": "pending", "object_id": null,
                      "frames_used": 41, "frames_rejected": 9,
                      "spread_mm": 12.3, "spread_deg": 4.1, "depth_score": 0.93,
                      "fitness": null, "note": null}],
     "not_found": [{"class": "mug", "reason": "..."}]}

`source` is "estimates" (fused over frames) or "register" (global registration);
`status` is "pending" (for review), "placed" (written to annotations.json as object
`object_id`), "accepted" (a person took it in the GUI) or "rejected" (a person dropped
it, or init kept the object `object_id` already annotated in its place). Poses are in the
world frame of trajectory.txt, metres. `note` says what a person should check (e.g.
"orientation ambiguous": a half turn fits the shape as well). Written atomically;
unknown keys are rejected.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labeller.core.errors import FormatError
from labeller.core.fileio import atomic_write_text, read_json_object
from labeller.core.poses import pose_problem

SUGGESTIONS_FORMAT = "labeller-suggestions"
SUGGESTIONS_VERSION = 1
SUGGESTIONS_FILE = "suggestions.json"
SOURCES = ("estimates", "register")
STATUSES = ("pending", "placed", "accepted", "rejected")
_TOP_KEYS = {"format", "version", "trajectory_sha256", "suggestions", "not_found"}
_KEYS = {"class", "model", "T_world_obj", "source", "status", "object_id", "frames_used",
         "frames_rejected", "spread_mm", "spread_deg", "depth_score", "fitness", "note"}


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 4)


@dataclass
class Suggestion:
    """One suggested object pose (T_world_obj (4, 4), metres) and where it came from."""

    class_name: str
    model: str
    T_world_obj: np.ndarray
    source: str
    status: str = "pending"
    object_id: int | None = None
    frames_used: int = 0
    frames_rejected: int = 0
    spread_mm: float | None = None
    spread_deg: float | None = None
    depth_score: float | None = None
    fitness: float | None = None
    note: str | None = None

    def to_dict(self) -> dict:
        return {"class": self.class_name, "model": self.model,
                "T_world_obj": np.asarray(self.T_world_obj, np.float64).tolist(),
                "source": self.source, "status": self.status, "object_id": self.object_id,
                "frames_used": int(self.frames_used), "frames_rejected": int(self.frames_rejected),
                "spread_mm": _num(self.spread_mm), "spread_deg": _num(self.spread_deg),
                "depth_score": _num(self.depth_score), "fitness": _num(self.fitness),
                "note": self.note}


@dataclass
class SuggestionFile:
    """All suggestions of one scene and the classes init could not find."""

    suggestions: list[Suggestion] = field(default_factory=list)
    not_found: list[tuple[str, str]] = field(default_factory=list)
    trajectory_sha256: str | None = None

    def to_json(self) -> str:
        d: dict = {"format": SUGGESTIONS_FORMAT, "version": SUGGESTIONS_VERSION}
        if self.trajectory_sha256:
            d["trajectory_sha256"] = self.trajectory_sha256
        d["suggestions"] = [s.to_dict() for s in self.suggestions]
        d["not_found"] = [{"class": c, "reason": r} for c, r in self.not_found]
        return json.dumps(d, indent=2) + "\n"

    def write(self, path: str | os.PathLike) -> None:
        """Write atomically (temporary file, then rename)."""
        atomic_write_text(path, self.to_json())

    @classmethod
    def read(cls, path: str | os.PathLike) -> SuggestionFile:
        path = Path(path)
        if not path.is_file():
            raise FormatError(path, "file not found")
        d = read_json_object(path, "a suggestions object")
        if d.get("format") != SUGGESTIONS_FORMAT:
            raise FormatError(path, f"format: expected '{SUGGESTIONS_FORMAT}'")
        v = d.get("version")
        if not isinstance(v, int) or not 1 <= v <= SUGGESTIONS_VERSION:
            raise FormatError(path, f"version: this labeller reads {SUGGESTIONS_VERSION}, got {v!r}")
        unknown = sorted(set(d) - _TOP_KEYS)
        if unknown:
            raise FormatError(path, f"{unknown[0]}: unknown key")
        out = cls(trajectory_sha256=d.get("trajectory_sha256"))
        raw = d.get("suggestions", [])
        if not isinstance(raw, list):
            raise FormatError(path, "suggestions: must be a list")
        for i, s in enumerate(raw):
            f = f"suggestions[{i}]"
            if not isinstance(s, dict):
                raise FormatError(path, f"{f}: must be an object")
            unknown = sorted(set(s) - _KEYS)
            if unknown:
                raise FormatError(path, f"{f}.{unknown[0]}: unknown key")
            try:
                T = np.array(s["T_world_obj"], dtype=np.float64)
                cname, model, source = s["class"], s["model"], s["source"]
            except KeyError as exc:
                raise FormatError(path, f"{f}.{exc.args[0]}: missing") from None
            except (TypeError, ValueError):
                raise FormatError(path, f"{f}.T_world_obj: must be a 4x4 list of numbers") from None
            if (p := pose_problem(T)) is not None:
                raise FormatError(path, f"{f}.T_world_obj: {p}")
            if source not in SOURCES:
                raise FormatError(path, f"{f}.source: must be one of {', '.join(SOURCES)}")
            status = s.get("status", "pending")
            if status not in STATUSES:
                raise FormatError(path, f"{f}.status: must be one of {', '.join(STATUSES)}")
            if not isinstance(cname, str) or not isinstance(model, str):
                raise FormatError(path, f"{f}: class and model must be strings")
            out.suggestions.append(Suggestion(
                cname, model, T, source, status, s.get("object_id"),
                int(s.get("frames_used", 0)), int(s.get("frames_rejected", 0)),
                s.get("spread_mm"), s.get("spread_deg"), s.get("depth_score"), s.get("fitness"),
                s.get("note") if isinstance(s.get("note"), str) else None))
        for i, nf in enumerate(d.get("not_found", [])):
            if not isinstance(nf, dict) or not isinstance(nf.get("class"), str):
                raise FormatError(path, f"not_found[{i}]: must be {{'class': ..., 'reason': ...}}")
            out.not_found.append((nf["class"], str(nf.get("reason", ""))))
        return out


def suggestions_path(scene_dir: str | os.PathLike) -> Path:
    """Where a scene's suggestions.json lives (beside annotations.json)."""
    return Path(scene_dir) / SUGGESTIONS_FILE
