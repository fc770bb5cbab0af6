"""What an init run did: one row per object found, the misses, and the table it prints."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class ObjectRow:
    """One fused or registered object. frames_used / frames_rejected: estimates of its
    class kept / not kept (registration: 0 / 0); spread: RMS deviation of the kept
    estimates from the fused pose; depth_score: mean depth-consistency score of the
    fused pose over a few frames (NaN when nothing could be scored); action: what
    happened to annotations.json ("added", "replaced", "kept existing", "suggested");
    note: what the person should check (registration: "orientation ambiguous")."""

    class_name: str
    source: str
    frames_used: int
    frames_rejected: int
    spread_mm: float
    spread_deg: float
    depth_score: float
    action: str
    object_id: int | None = None
    fitness: float = float("nan")
    note: str | None = None


@dataclass
class InitSummary:
    """rows: objects; not_found: (class, reason); skipped: class -> estimates without a
    model; untracked: estimates in frames without a camera pose; written: files written."""

    rows: list[ObjectRow] = field(default_factory=list)
    not_found: list[tuple[str, str]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    untracked: int = 0
    n_estimates: int = 0
    written: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def format(self) -> str:
        def f(x: float, spec: str) -> str:
            return "-" if not math.isfinite(x) else format(x, spec)

        lines = [f"{'object':<22} {'source':<9} {'used':>5} {'rejected':>8} {'spread mm':>9} "
                 f"{'spread deg':>10} {'depth':>6}  result"]
        for r in self.rows:
            name = r.class_name + (f" #{r.object_id}" if r.object_id is not None else "")
            lines.append(f"{name:<22} {r.source:<9} {r.frames_used:>5} {r.frames_rejected:>8} "
                         f"{f(r.spread_mm, '.1f'):>9} {f(r.spread_deg, '.1f'):>10} "
                         f"{f(r.depth_score, '.2f'):>6}  {r.action}")
        for c, why in self.not_found:
            lines.append(f"{c:<22} not found: {why}")
        if self.skipped:
            lines.append("skipped (no model): " + ", ".join(f"{c} ({n})" for c, n in sorted(self.skipped.items())))
        if self.untracked:
            lines.append(f"{self.untracked} estimate(s) in frames without a camera pose were not used")
        lines.append(f"{len(self.rows)} object(s) from {self.n_estimates} estimate(s) in "
                     f"{self.seconds:.1f} s; wrote {', '.join(self.written) or 'nothing'}")
        return "\n".join(lines)
