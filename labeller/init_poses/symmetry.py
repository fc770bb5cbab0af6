"""Comparing and averaging object rotations modulo a model's symmetries.

A class may turn freely about one model-frame axis (the cans, the marker:
`labeller.core.classes.ObjectClass.symmetry_axis`) and may have a finite set of
model-frame rotations that leave it looking the same (`discrete`, identity included).
Two poses of such an object that differ only by a symmetry are the same pose, so every
distance here is the smallest over the symmetries, and a mean is taken over the
representatives nearest to a reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from labeller.core.classes import BY_NAME


def _identity() -> tuple[np.ndarray, ...]:
    return (np.eye(3),)


@dataclass(frozen=True)
class Symmetry:
    """axis_obj: (3,) unit model-frame axis of a continuous symmetry, or None.
    discrete: model-frame rotations (3, 3) that map the model onto itself, identity first."""

    axis_obj: np.ndarray | None = None
    discrete: tuple[np.ndarray, ...] = field(default_factory=_identity)


def class_symmetry(class_name: str) -> Symmetry:
    """The symmetry of a class from the class table (none for classes outside it).

    The table's `symmetry_axis` is the continuous (shape) symmetry; its
    `appearance_turns` (axis, degrees) add discrete ones. Only the rotation part is kept:
    the turns are about axes through the model's centre, where its origin lies.
    """
    cls = BY_NAME.get(class_name)
    if cls is None:
        return Symmetry()
    axis = None if cls.symmetry_axis is None else np.asarray(cls.symmetry_axis, np.float64)
    if axis is not None:
        axis = axis / np.linalg.norm(axis)
    discrete = [np.eye(3)]
    for turn_axis, angle_deg in cls.appearance_turns:
        S = cv2.Rodrigues(np.deg2rad(angle_deg) * np.asarray(turn_axis, np.float64))[0]
        if not np.allclose(S, np.eye(3)):
            discrete.append(S)
    return Symmetry(axis, tuple(discrete))


def rotation_between(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The smallest rotation (3, 3) taking unit vector u onto unit vector v."""
    u = u / np.linalg.norm(u)
    v = v / np.linalg.norm(v)
    c = float(np.clip(u @ v, -1.0, 1.0))
    axis = np.cross(u, v)
    s = float(np.linalg.norm(axis))
    if s < 1e-12:
        if c > 0:
            return np.eye(3)
        # Opposite: half a turn about any axis perpendicular to u.
        p = np.cross(u, [1.0, 0.0, 0.0] if abs(u[0]) < 0.9 else [0.0, 1.0, 0.0])
        p /= np.linalg.norm(p)
        return 2.0 * np.outer(p, p) - np.eye(3)
    k = axis / s
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * K + (1 - c) * (K @ K)


def pairwise_distance_deg(Ra: np.ndarray, Rb: np.ndarray, sym: Symmetry) -> np.ndarray:
    """(A, B) rotation distances in degrees between Ra (A, 3, 3) and Rb (B, 3, 3),
    the smallest over the symmetries."""
    best = np.full((len(Ra), len(Rb)), -np.inf)
    for S in sym.discrete:
        RbS = Rb @ S
        if sym.axis_obj is None:
            # angle of Raᵀ Rb: cos = (trace - 1) / 2, trace(RaᵀRb) = sum of products.
            c = (Ra.reshape(len(Ra), 9) @ RbS.reshape(len(Rb), 9).T - 1.0) / 2.0
        else:
            # Free turn about the axis: only where the axis points matters.
            c = (Ra @ sym.axis_obj) @ (RbS @ sym.axis_obj).T
        best = np.maximum(best, c)
    return np.degrees(np.arccos(np.clip(best, -1.0, 1.0)))


def nearest_representatives(R_ref: np.ndarray, Rs: np.ndarray, sym: Symmetry) -> np.ndarray:
    """(N, 3, 3): each of Rs replaced by its symmetric equivalent nearest to R_ref."""
    out = np.empty_like(Rs)
    for i, R in enumerate(Rs):
        cands = [R @ S for S in sym.discrete]
        d = pairwise_distance_deg(R_ref[None], np.stack(cands), Symmetry(sym.axis_obj))[0]
        Rk = cands[int(np.argmin(d))]
        if sym.axis_obj is not None:
            # Same axis direction as Rk, the rest as close to R_ref as can be.
            Rk = rotation_between(R_ref @ sym.axis_obj, Rk @ sym.axis_obj) @ R_ref
        out[i] = Rk
    return out


def mean_rotation(R_ref: np.ndarray, Rs: np.ndarray, weights: np.ndarray, sym: Symmetry) -> np.ndarray:
    """Weighted chordal mean (3, 3) of Rs (N, 3, 3) modulo the symmetries, near R_ref."""
    from labeller.core.poses import nearest_rotation

    reps = nearest_representatives(R_ref, Rs, sym)
    w = np.asarray(weights, np.float64)
    M = np.einsum("n,nij->ij", w / w.sum(), reps)
    return nearest_rotation(M)
