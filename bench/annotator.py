"""The scripted first-time annotator: the real window, driven by key and mouse events.

For each seed it makes a fresh synthetic scene (`labeller synth`, six objects, no
trajectory, no annotations), opens it in the real `MainWindow` (offscreen Qt), and acts
as a new annotator would, counting every key press, click, drag and menu pick as one
action:

* *Run tracking* on the banner; `G` (turns about the object's own axes) and `Ctrl+M`
  (multi-view, so that `R` refines on several frames) once.
* per object, in the order of the class list: pick the class in the Objects panel's
  list (click, click), *Add*; click the timeline at the frame where the object is seen
  best; Ctrl+drag it down ~45 degrees, as a person tilts an upright model towards a
  table seen at a slant (where it was added, or after placing it when it hides there
  behind an earlier object); `P` and click it where it shows (its most interior pixel:
  the only use of the ground truth while annotating, standing in for the annotator's
  eyes finding the object); turn it about its up axis to the yaw that fits (`Y` /
  `Shift+Y` for quarter turns, the rest with one sideways Ctrl+drag, or `Shift+U` /
  `Shift+O` 5 degree presses when a sideways drag would turn about another axis); move
  it where it fits (`P` + click on its centre, or a drag); `S` (stand on support); `R`
  at least twice and again while the notice says it still moved (at most four); if the
  colour check (the preview's flip QA for this frame) suspects a 180 degree flip,
  `Shift+Y` and `R`, undone with `Ctrl+Z` when the colour check likes the turn less.
* `Ctrl+S`.

Which yaw fits is decided from what the window shows, never from the ground truth
poses (`fitting_yaw`): the textured model turned about its up axis (what the overlay
would draw), stood on the support `S` finds and slid along it over the object's pixels,
compared with the frame and with the multi-view frames: the depth agreement of the drawn
surface with the sensor (in the main frame both ways: the drawn pixels that agree, and
the object's pixels above the support that the drawing covers) plus the print's
colour-consistency score (`labeller.geometry.colour_consistency`). These comparisons
model the annotator looking at the overlay and the multi-view frames and are not counted
as actions; the key presses and drags that apply the turn and the move are.

Then annotations.json is scored against gt/ in the camera frame of the frame each object
was placed on (the tracked trajectory's world is not gt's): ADD-S and the symmetry axis'
angle for classes with a continuous symmetry, ADD and the rotation error otherwise, and
a 180 degree flip when the error is over 150 degrees. Targets (docs/gui.md, "Annotator
benchmark"): all six within 5 mm / 2 degrees, no flips, <= 120 actions, <= 6 minutes.

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/annotator.py [--seed 3 --seed 4] [--work DIR]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGET_MM, TARGET_DEG, TARGET_ACTIONS, TARGET_S = 5.0, 2.0, 120, 360.0
TILT_GUESS_DEG = 45.0      # how far a person tilts an upright model towards a slanted table
YAW_STEP_DEG = 5.0         # the eye's candidate yaws; also Shift+U / Shift+O's step
AGREE_M = 0.015            # depth agreement, as the depth-consistency score counts it
ABOVE_SUPPORT_M = 0.008    # sensor points this far above the support belong to objects
COLOUR_WEIGHT = 0.5        # weight of the print's colour score against the depth fit
MAX_VIEW_FRACT = 0.15     # the annotator's frame: object not closer than this
BORDER_PX = 4
COARSE_YAW_DEG = 15.0     # the first look's yaw step
CLOSER_LOOKS = 3          # yaws looked at closer (with their neighbours and half turns)
EYE_MAX_WIDTH = 400       # the eye looks at frames wider than this at half resolution
PLACE_AGREE_M = 0.01      # P puts it where the eye sees it fit: place there with P
SETTLED_MM, SETTLED_DEG = 1.0, 0.5   # a refine that moved less: settled
DRAWN_WAIT_S = 5.0        # wait this long at most for the overlay to show the object
PRESSABLE_PX = 6.0        # a region this deep takes a press without slipping off
FLIP_DEG = 150.0           # an error beyond this is a 180 degree flip


@dataclass
class Settings:
    refines: int = 2                 # R presses per object at least
    max_refines: int = 4             # and at most, while each still moves it
    wait_s: float = 600.0            # give up waiting for a background job after this


@dataclass
class ObjectLog:
    class_name: str
    obj_id: int
    frame: int
    actions: int = 0
    seconds: float = 0.0
    yaw_deg: float = 0.0
    notes: list[str] = field(default_factory=list)


@dataclass
class RunLog:
    actions: int = 0
    track_s: float = 0.0
    annotate_s: float = 0.0
    objects: list[ObjectLog] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)


# -- driving the window ---------------------------------------------------------------------

class Driver:
    """Key and mouse events on the window's widgets; each call is one counted action."""

    def __init__(self, window, log: RunLog, settings: Settings):
        self.w = window
        self.log = log
        self.settings = settings

    def _count(self, what: str) -> None:
        self.log.actions += 1
        self.log.steps.append(what)

    def key(self, key, modifiers=None, what: str = "") -> None:
        from PySide6.QtCore import Qt
        from PySide6.QtTest import QTest

        self.activate()
        QTest.keyClick(self.w.view, key, modifiers or Qt.KeyboardModifier.NoModifier)
        self._count(what or f"key {key}")
        self.settle()

    def activate(self) -> None:
        """Shortcuts fire in the active window only; a dock shown or a popup closed can
        leave the offscreen platform without one (a person's window stays active)."""
        from PySide6.QtTest import QTest
        from PySide6.QtWidgets import QApplication

        if QApplication.activeWindow() is not self.w:
            self.w.activateWindow()
            QTest.qWaitForWindowActive(self.w)

    def click(self, widget, pos=None, modifiers=None, what: str = "") -> None:
        from PySide6.QtCore import Qt
        from PySide6.QtTest import QTest

        QTest.mouseClick(widget, Qt.MouseButton.LeftButton,
                         modifiers or Qt.KeyboardModifier.NoModifier,
                         pos if pos is not None else widget.rect().center())
        self._count(what or "click")
        self.settle()

    def drag(self, widget, start, end, modifiers, what: str = "drag", steps: int = 8) -> None:
        from PySide6.QtCore import QPoint, Qt
        from PySide6.QtTest import QTest

        QTest.mousePress(widget, Qt.MouseButton.LeftButton, modifiers, start)
        for k in range(1, steps + 1):
            p = start + (end - start) * (k / steps)
            QTest.mouseMove(widget, QPoint(round(p.x()), round(p.y())))
        QTest.mouseRelease(widget, Qt.MouseButton.LeftButton, modifiers, end)
        self._count(what)
        self.settle()

    def wait(self, done: Callable[[], bool], what: str) -> None:
        from PySide6.QtWidgets import QApplication

        t0 = time.monotonic()
        while not done():
            QApplication.processEvents()
            time.sleep(0.005)
            if time.monotonic() - t0 > self.settings.wait_s:
                raise RuntimeError(f"gave up waiting for {what}")

    def settle(self) -> None:
        """Let the window finish what the last action started (overlay renders)."""
        from PySide6.QtWidgets import QApplication

        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.05:  # queued requests (a frame change) get going
            QApplication.processEvents()
            time.sleep(0.005)
        self.wait(self.w.render_idle, "the overlay")
        QApplication.processEvents()


def pick_class(d: Driver, class_name: str) -> None:
    """Open the Objects panel's class list and click the class (two actions)."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    combo = d.w.panel.class_combo
    i = combo.findData(class_name)
    if i < 0:
        raise RuntimeError(f"class {class_name} is not in the list")
    d.click(combo, what="open the class list")
    view = combo.view()
    if view.isVisible():
        rect = view.visualRect(combo.model().index(i, 0))
        QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton,
                         Qt.KeyboardModifier.NoModifier, rect.center())
    if combo.currentIndex() != i:  # the popup did not take the click (offscreen)
        combo.setCurrentIndex(i)
    if view.isVisible():  # an open popup would take the keys
        combo.hidePopup()
    d._count(f"pick {class_name}")
    d.settle()


def click_timeline(d: Driver, frame: int) -> None:
    from PySide6.QtCore import QPoint

    tl = d.w.timeline
    margin = 8
    x = margin + (frame + 0.5) * max(tl.width() - 2 * margin, 1) / tl.n_frames
    d.click(tl, QPoint(round(x), tl.height() // 2), what=f"timeline frame {frame}")
    if d.w.current_frame != frame:
        raise RuntimeError(f"the timeline click went to frame {d.w.current_frame}, not {frame}")


def drawn_pixels(d: Driver, obj_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(us, vs): the main view's pixels showing object obj_id, once its overlay is drawn
    (a person presses on the object they see; the newest overlay may still be coming)."""
    from PySide6.QtWidgets import QApplication

    view = d.w.view
    t0 = time.monotonic()
    while time.monotonic() - t0 < DRAWN_WAIT_S:
        QApplication.processEvents()
        if d.w.render_idle() and view._inst is not None and (view._inst == obj_id).any():
            break
        time.sleep(0.01)
    if view._inst is None:
        return np.array([], int), np.array([], int)
    vs, us = np.nonzero(view._inst == obj_id)
    return us, vs


def interior_pixel(us: np.ndarray, vs: np.ndarray) -> tuple[int, int]:
    """The pixel of a drawn region farthest from its edge (where a press surely hits it)."""
    x0, y0 = int(us.min()), int(vs.min())
    m = np.zeros((int(vs.max()) - y0 + 3, int(us.max()) - x0 + 3), np.uint8)
    m[vs - y0 + 1, us - x0 + 1] = 1
    dt = cv2.distanceTransform(m, cv2.DIST_L2, 3)
    v, u = np.unravel_index(int(np.argmax(dt)), dt.shape)
    return int(u) + x0 - 1, int(v) + y0 - 1


def pressable(us: np.ndarray, vs: np.ndarray) -> bool:
    """A drawn region a press lands on surely: PRESSABLE_PX deep somewhere."""
    x0, y0 = int(us.min()), int(vs.min())
    m = np.zeros((int(vs.max()) - y0 + 3, int(us.max()) - x0 + 3), np.uint8)
    m[vs - y0 + 1, us - x0 + 1] = 1
    return float(cv2.distanceTransform(m, cv2.DIST_L2, 3).max()) >= PRESSABLE_PX


def reselect_if_lost(d: Driver, obj_id: int, log: ObjectLog) -> None:
    """A press that landed on another object selects that one: pick ours in the list."""
    w = d.w
    if w.selected_id == obj_id:
        return
    log.notes.append("a press picked another object: reselected in the list")
    lst = w.panel.list
    for i in range(lst.count()):
        it = lst.item(i)
        if it.text().startswith(f"#{obj_id} "):
            d.click(lst.viewport(), lst.visualItemRect(it).center(), what="select in list")
            break


def click_pixel(d: Driver, u: int, v: int, what: str) -> None:
    d.click(d.w.view.viewport(), d.w.view.view_pos_of_pixel(u, v), what=what)


# -- the annotator's eye: which yaw fits what the window shows --------------------------------

def _roi(camera, c_cam: np.ndarray, radius_m: float) -> tuple[int, int, int, int]:
    u, v = camera.project(c_cam[None])[0]
    r = radius_m * camera.fx / max(float(c_cam[2]), 1e-3)
    x0, y0 = max(int(u - r), 0), max(int(v - r), 0)
    x1, y1 = min(int(u + r) + 1, camera.width), min(int(v + r) + 1, camera.height)
    return x0, y0, max(x1 - x0, 0), max(y1 - y0, 0)


@dataclass
class EyeGuess:
    """What the annotator sees fits best: turn the object by yaw_deg about its up axis
    (model axis up_k, sign up_s) and move it to T_world_obj (its centre there); score: the
    fit (see `fitting_yaw`); yaws, scores: every candidate's."""

    yaw_deg: float
    up_k: int
    up_s: int
    T_world_obj: np.ndarray
    score: float
    yaws: np.ndarray
    scores: np.ndarray


def object_pixels(camera, T_world_cam: np.ndarray, depth_m: np.ndarray, plane, c_world,
                  radius_m: float, click_uv: tuple[int, int],
                  roi: tuple[int, int, int, int], others: np.ndarray | None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(mask (h, w) bool over roi, world points (N, 3)) of the object as the depth view
    shows it: pixels above the support within 1.5 radii (+1 cm) of the clicked surface
    point c_world along the support, the connected piece (split at depth jumps) holding
    the clicked pixel, without the objects already placed."""
    x, y, w, h = roi
    D = depth_m[y:y + h, x:x + w]
    vv, uu = np.mgrid[y:y + h, x:x + w]
    P_cam = np.stack([(uu - camera.cx) / camera.fx * D, (vv - camera.cy) / camera.fy * D, D], -1)
    P_world = P_cam @ T_world_cam[:3, :3].T + T_world_cam[:3, 3]
    n = plane.normal_world
    above = (P_world - plane.point_world) @ n
    off = P_world - c_world
    horiz = np.linalg.norm(off - (off @ n)[..., None] * n, axis=-1)
    mask = (D > 0) & (above > ABOVE_SUPPORT_M) & (horiz < 1.5 * radius_m + 0.01)
    if others is not None:
        mask &= others[y:y + h, x:x + w] == 0
    jump = np.zeros_like(mask)
    jump[:, 1:] |= np.abs(np.diff(D, axis=1)) > 0.02
    jump[1:, :] |= np.abs(np.diff(D, axis=0)) > 0.02
    n_lab, lab = cv2.connectedComponents((mask & ~jump).astype(np.uint8), connectivity=4)
    cu, cv_ = click_uv[0] - x, click_uv[1] - y
    if 0 <= cv_ < h and 0 <= cu < w and lab[cv_, cu] > 0:
        mask = lab == lab[cv_, cu]
    return mask, P_world[mask]


@dataclass
class FrameSeen:
    """One frame the annotator looks at: T_world_cam (4x4), depth (H, W) metres, rgb
    (H, W, 3) uint8."""

    T_world_cam: np.ndarray
    depth_m: np.ndarray
    rgb: np.ndarray


def _fit_in_frame(renderer, camera, seen: FrameSeen, T_world_obj: np.ndarray,
                  roi: tuple[int, int, int, int], obj_px: np.ndarray | None) -> float:
    """How well the model drawn at T_world_obj fits one frame over roi: F1 of the depth
    agreement when the object's pixels are known (obj_px), else the share of drawn pixels
    that agree; plus COLOUR_WEIGHT x the print's gradient correlation over them."""
    from labeller.core.poses import inv_pose
    from labeller.geometry.colour_consistency import (
        DEFAULT_SETTINGS,
        erode,
        gradient_correlation,
        luminance,
        luminance_gradients,
    )

    x, y, w, h = roi
    if w < 4 or h < 4:
        return 0.0
    D = seen.depth_m[y:y + h, x:x + w]
    r = renderer.render(camera, inv_pose(inv_pose(seen.T_world_cam) @ T_world_obj), roi=roi)
    drawn = r.inst > 0
    vis = drawn & ~((D > 0) & (D < r.depth_m - AGREE_M))  # something in front says nothing
    if not vis.any():
        return 0.0
    agree = vis & (D > 0) & (np.abs(D - r.depth_m) < AGREE_M)
    precision = agree.sum() / max(int(vis.sum()), 1)
    if obj_px is not None:
        recall = (agree & obj_px).sum() / max(int(obj_px.sum()), 1)
        fit = 2 * precision * recall / max(precision + recall, 1e-9)
    else:
        fit = precision
    colour = 0.0
    mask = erode(agree, DEFAULT_SETTINGS.edge_px)
    if mask.sum() >= DEFAULT_SETTINGS.min_pixels:
        sig = DEFAULT_SETTINGS.blur_sigma_px
        c = gradient_correlation(luminance_gradients(luminance(seen.rgb[y:y + h, x:x + w]),
                                                     agree, sig),
                                 luminance_gradients(luminance(r.albedo), agree, sig), mask)
        colour = float(c) if np.isfinite(c) else 0.0
    return float(fit + COLOUR_WEIGHT * colour)


def _object_roi(camera, T_world_cam: np.ndarray, c_world: np.ndarray, radius_m: float
                ) -> tuple[int, int, int, int]:
    from labeller.core.poses import inv_pose

    T_cw = inv_pose(T_world_cam)
    c_cam = T_cw[:3, :3] @ c_world + T_cw[:3, 3]
    if c_cam[2] <= 0.05:
        return 0, 0, 0, 0
    return _roi(camera, c_cam, radius_m)


def fitting_yaw(camera, main: FrameSeen, others: list[FrameSeen], T_world_obj: np.ndarray,
                model, model_path, plane, click_uv: tuple[int, int],
                placed_inst: np.ndarray | None) -> EyeGuess | str:
    """The yaw (5 degree steps) and place on the support that fit what the window shows.

    Each candidate: the object turned about its up axis, stood on the support
    (`stand_on_plane`), and slid along the support so that its visible surface's centroid
    sits over the centroid of the object's pixels in the main frame (`object_pixels`);
    a first look every COARSE_YAW_DEG in the main frame; then the best CLOSER_LOOKS, their
    neighbours and their half turns are slid on a 7.5 mm grid (+-15 mm) in the main frame
    and scored in it (F1 of the depth agreement + colour) and in the multi-view frames
    (agreement + colour; `_fit_in_frame`), averaged. Frames wider than EYE_MAX_WIDTH are
    looked at in half resolution. What it misses when the main frame shows too little
    of the object (a string)."""
    from labeller.geometry.colour_consistency import scaled_camera

    if camera.width > EYE_MAX_WIDTH:
        camera = scaled_camera(camera, 2)
        size = (camera.width, camera.height)

        def half(f: FrameSeen) -> FrameSeen:
            return FrameSeen(f.T_world_cam,
                             cv2.resize(f.depth_m, size, interpolation=cv2.INTER_NEAREST),
                             cv2.resize(f.rgb, size, interpolation=cv2.INTER_AREA))

        main, others = half(main), [half(f) for f in others]
        click_uv = (click_uv[0] // 2, click_uv[1] // 2)
        if placed_inst is not None:
            placed_inst = cv2.resize(placed_inst.astype(np.int32).astype(np.float32), size,
                                     interpolation=cv2.INTER_NEAREST).astype(np.int32)
    from labeller.annotate.pose_edit import keep_centre, up_axis
    from labeller.annotate.support_plane import stand_on_plane
    from labeller.core.poses import axis_angle_to_matrix, inv_pose
    from labeller.geometry.overlay import model_centre
    from labeller.geometry.textured_render import TexturedRenderer, load_textured_model

    centre = model_centre(model)
    radius = 0.5 * float(model.diameter_m)
    # where the annotator sees the object: the clicked pixel's surface point
    cu, cv_ = click_uv
    z = float(main.depth_m[cv_, cu]) if 0 <= cv_ < camera.height and 0 <= cu < camera.width \
        else 0.0
    if z <= 0:
        return "no depth at the clicked pixel"
    p = np.array([(cu - camera.cx) / camera.fx * z, (cv_ - camera.cy) / camera.fy * z, z])
    c_world = main.T_world_cam[:3, :3] @ p + main.T_world_cam[:3, 3]
    roi = _object_roi(camera, main.T_world_cam, c_world, 2.0 * radius + 0.03)
    x, y, w, h = roi
    if w < 4 or h < 4:
        return "the object is outside the frame"
    D = main.depth_m[y:y + h, x:x + w]
    obj_px, obj_pts = object_pixels(camera, main.T_world_cam, main.depth_m, plane, c_world,
                                    radius, click_uv, roi, placed_inst)
    if len(obj_pts) < 20:
        return f"only {len(obj_pts)} depth pixels above the support near the click"
    n = plane.normal_world
    c_seen = obj_pts.mean(0)
    renderer = TexturedRenderer([(1, load_textured_model(model_path), np.eye(4))])
    vv, uu = np.mgrid[y:y + h, x:x + w]
    k, s = up_axis(T_world_obj[:3, :3], n)
    e = np.zeros(3)
    e[k] = float(s)
    other_rois = [_object_roi(camera, f.T_world_cam, c_seen, 1.5 * radius + 0.03)
                  for f in others]

    def score(T: np.ndarray) -> float:
        total = _fit_in_frame(renderer, camera, main, T, roi, obj_px)
        for f, r in zip(others, other_rois, strict=True):
            total += _fit_in_frame(renderer, camera, f, T, r, None)
        return total / (1 + len(others))

    def visible_centroid(T: np.ndarray) -> np.ndarray | None:
        r = renderer.render(camera, inv_pose(inv_pose(main.T_world_cam) @ T), roi=roi)
        vis = (r.inst > 0) & ~((D > 0) & (D < r.depth_m - AGREE_M))
        if not vis.any():
            return None
        z = r.depth_m[vis]
        p = np.stack([(uu[vis] - camera.cx) / camera.fx * z,
                      (vv[vis] - camera.cy) / camera.fy * z, z], -1)
        return (p @ main.T_world_cam[:3, :3].T + main.T_world_cam[:3, 3]).mean(0)

    yaws = np.arange(0.0, 360.0, YAW_STEP_DEG)
    scores = np.full(len(yaws), -np.inf)
    poses: list[np.ndarray | None] = [None] * len(yaws)

    def candidate(i: int) -> np.ndarray | None:
        """Yaw i stood on the support and slid over the object's pixels."""
        R = T_world_obj[:3, :3] @ axis_angle_to_matrix(e, math.radians(float(yaws[i])))
        T = stand_on_plane(keep_centre(T_world_obj, R, centre), centre, model.extent_m, plane)
        c_vis = visible_centroid(T)
        if c_vis is None:
            return None
        shift = c_seen - c_vis
        T = T.copy()
        T[:3, 3] += shift - (shift @ n) * n  # slide along the support only
        return T

    # a first look in the main frame every COARSE_YAW_DEG
    coarse = int(round(COARSE_YAW_DEG / YAW_STEP_DEG))
    first = np.full(len(yaws), -np.inf)
    for i in range(0, len(yaws), coarse):
        T = candidate(i)
        if T is not None:
            first[i] = _fit_in_frame(renderer, camera, main, T, roi, obj_px)
            poses[i] = T
    if not np.isfinite(first).any():
        return "no candidate is visible in the frame"
    # a closer look at the best ones, their neighbours in yaw and their half turns: in the, each slid on a 7.5 mm grid (+-15 mm) along the support
    a1 = np.cross(n, [1.0, 0.0, 0.0] if abs(n[0]) < 0.9 else [0.0, 1.0, 0.0])
    a1 /= np.linalg.norm(a1)
    a2 = np.cross(n, a1)
    steps = np.array([-0.015, -0.0075, 0.0, 0.0075, 0.015])
    look: set[int] = set()
    half = len(yaws) // 2
    for i in np.argsort(-first)[:CLOSER_LOOKS]:
        for j in (int(i) - 1, int(i), int(i) + 1):
            look |= {j % len(yaws), (j + half) % len(yaws)}
    for i in sorted(look):
        T0 = poses[i] if poses[i] is not None else candidate(i)
        if T0 is None:
            continue
        best_T, best_s = T0, _fit_in_frame(renderer, camera, main, T0, roi, obj_px)
        for dx in steps:
            for dy in steps:
                if dx == 0 and dy == 0:
                    continue
                T = T0.copy()
                T[:3, 3] += dx * a1 + dy * a2
                sc = _fit_in_frame(renderer, camera, main, T, roi, obj_px)
                if sc > best_s:
                    best_T, best_s = T, sc
        scores[i], poses[i] = score(best_T), best_T
    b = int(np.argmax(scores))
    best = poses[b]
    assert best is not None
    yaw = float(yaws[b])
    return EyeGuess(yaw if yaw <= 180 else yaw - 360, k, s, best, float(scores[b]), yaws, scores)


def apply_yaw(d: Driver, yaw_deg: float, up_k: int, up_s: int, obj_id: int,
              frame: int, log: ObjectLog) -> None:
    """Turn the selected object by yaw_deg about its up axis (model axis up_k, sign up_s):
    quarter turns with Y / Shift+Y, the rest with one Ctrl+drag sideways when a sideways
    drag turns about that axis (object-axes turn frame: the model axis closest to the
    camera's y), else with Shift+(turn key) presses, 5 degrees each."""
    from PySide6.QtCore import Qt

    from labeller.annotate.pose_edit import nearest_axis
    from labeller.gui.editing import DRAG_ROTATE_DEG_PER_PX
    from labeller.gui.views import ROTATE_KEYS

    q = int(round(yaw_deg / 90.0)) % 4
    rest = yaw_deg - 90.0 * round(yaw_deg / 90.0)
    if q == 1:
        d.key(Qt.Key.Key_Y, what="Y")
    elif q == 2:
        d.key(Qt.Key.Key_Y, Qt.KeyboardModifier.ShiftModifier, what="Shift+Y")
    elif q == 3:
        d.key(Qt.Key.Key_Y, Qt.KeyboardModifier.ShiftModifier, what="Shift+Y")
        d.key(Qt.Key.Key_Y, what="Y")
    if abs(rest) < YAW_STEP_DEG / 2:
        return
    w, m = d.w, d.w.model
    T = m.pose(obj_id)
    T_wc = m.T_world_cam(frame)
    k_h, s_h = nearest_axis(T_wc[:3, :3].T @ T[:3, :3], (0.0, 1.0, 0.0))
    us, vs = drawn_pixels(d, obj_id)
    if k_h == up_k and len(us):
        # a sideways drag turns by -du * DRAG_ROTATE_DEG_PER_PX * s_h about +e_k
        du = -up_s * rest * s_h / DRAG_ROTATE_DEG_PER_PX
        su, sv = interior_pixel(us, vs)
        d.drag(w.view.viewport(), w.view.view_pos_of_pixel(su, sv),
               w.view.view_pos_of_pixel(su + du, sv), Qt.KeyboardModifier.ControlModifier,
               what="Ctrl+drag yaw")
        reselect_if_lost(d, obj_id, log)
        return
    steps = int(round(rest / YAW_STEP_DEG))
    # rest about (up_s * e_k) is sign(up_s * rest) about +e_k
    want = 1 if up_s * steps > 0 else -1
    key = next(k for k, (axis, sign) in ROTATE_KEYS.items() if axis == up_k and sign == want)
    for _ in range(abs(steps)):
        d.key(key, Qt.KeyboardModifier.ShiftModifier, what=f"Shift+{key.name[4:]}")


# -- where the annotator looks (the ground-truth masks tell only where an object shows) ------

def best_view(scene: Path, obj_id: int, n_frames: int, tracked: set[int]
              ) -> tuple[int, int, int]:
    """(frame, u, v): the tracked frame where gt object obj_id is seen best, and its most
    interior pixel there. Best: the most pixels among the frames where it is not cut by
    the image border and covers at most MAX_VIEW_FRACT of the image (a view that close
    leaves no table around it for `S`); any frame when there is no such one."""
    from labeller.core.fileio import read_image

    cands: list[tuple[bool, int, int]] = []
    masks = {}
    for t in range(n_frames):
        if t not in tracked:
            continue
        m = read_image(scene / "gt" / "masks" / f"{t:06d}.png") == obj_id
        k = int(m.sum())
        if k == 0:
            continue
        border = bool(m[:BORDER_PX].any() or m[-BORDER_PX:].any() or m[:, :BORDER_PX].any()
                      or m[:, -BORDER_PX:].any())
        good = not border and k <= MAX_VIEW_FRACT * m.size
        cands.append((good, k, t))
        masks[t] = m
    if not cands:
        raise RuntimeError(f"object {obj_id} is not seen in any tracked frame")
    _, _, best = max(cands)
    dt = cv2.distanceTransform(masks[best].astype(np.uint8), cv2.DIST_L2, 5)
    v, u = np.unravel_index(int(np.argmax(dt)), dt.shape)
    return best, int(u), int(v)


# -- one object -------------------------------------------------------------------------------

def annotate_object(d: Driver, scene: Path, class_name: str, gt_id: int) -> ObjectLog:
    from PySide6.QtCore import Qt

    from labeller.annotate.pose_edit import place_at_pixel
    from labeller.core.errors import BadInput
    from labeller.core.poses import inv_pose
    from labeller.formats.labels import COLOUR_FLAGGED
    from labeller.geometry.overlay import model_centre
    from labeller.gui.editing import DRAG_ROTATE_DEG_PER_PX

    w = d.w
    m = w.model
    t0, a0 = time.monotonic(), d.log.actions
    tracked = set(m.trajectory.frame_ids)
    frame, u, v = best_view(scene, gt_id, m.n_frames, tracked)
    pick_class(d, class_name)
    d.click(w.panel.add_button, what="Add")
    obj = w.selected_id
    if obj is None:
        raise RuntimeError(f"Add did not add a {class_name}")
    log = ObjectLog(class_name, obj, frame)
    if w.current_frame != frame:
        click_timeline(d, frame)
    # tilt the upright model towards the slanted table: press on it, Ctrl+drag down; where
    # it was added when it shows well there (placed first it can end half inside the
    # table, and S finds the table above it), else once placed
    us, vs = drawn_pixels(d, obj)
    placed_first = not (len(us) and pressable(us, vs))
    if placed_first:
        d.key(Qt.Key.Key_P, what="P")
        click_pixel(d, u, v, "place click")
        us, vs = drawn_pixels(d, obj)
    if len(us):
        su, sv = interior_pixel(us, vs)
        start = w.view.view_pos_of_pixel(su, sv)
        end = w.view.view_pos_of_pixel(su, sv + TILT_GUESS_DEG / DRAG_ROTATE_DEG_PER_PX)
        T_before = m.pose(obj)
        d.drag(w.view.viewport(), start, end, Qt.KeyboardModifier.ControlModifier,
               what="Ctrl+drag tilt")
        if np.array_equal(T_before, m.pose(obj)):
            log.notes.append("the tilt drag missed")
        reselect_if_lost(d, obj, log)
    else:
        log.notes.append("not drawn: no tilt")
    if not placed_first:
        d.key(Qt.Key.Key_P, what="P")
        click_pixel(d, u, v, "place click")
    # the yaw and place that fit what the window shows (the support: what S finds)
    target = w.editor.edit_target()
    depth = w.service.frames.depth(frame)
    T = m.pose(obj)
    found = w.editor.find_support(target)
    guess: EyeGuess | str = f"no support seen: {found.message}"
    if found.plane is not None:
        placed = w.view._inst.copy() if w.view._inst is not None else None
        if placed is not None:
            placed[placed == obj] = 0
        main = FrameSeen(m.T_world_cam(frame), depth, m.scene.rgb(frame))
        shown = [f for f in w.multiview.shown_frames()
                 if f != frame and m.T_world_cam(f) is not None]
        seen = [FrameSeen(m.T_world_cam(f), w.service.frames.depth(f), m.scene.rgb(f))
                for f in shown]
        guess = fitting_yaw(m.camera, main, seen, T, target.mesh, _model_path(m, obj),
                            found.plane, (u, v), placed)
    if isinstance(guess, str):
        log.notes.append(f"no fit seen: {guess}")
    else:
        log.yaw_deg = guess.yaw_deg
        apply_yaw(d, guess.yaw_deg, guess.up_k, guess.up_s, obj, frame, log)
        # drag it over to where it fits (its centre follows the mouse)
        T_cw = inv_pose(m.T_world_cam(frame))
        centre = model_centre(target.mesh)

        def centre_px(T_world_obj: np.ndarray) -> np.ndarray:
            c = T_world_obj[:3, :3] @ centre + T_world_obj[:3, 3]
            return m.camera.project((T_cw[:3, :3] @ c + T_cw[:3, 3])[None])[0]

        # P on the pixel of its centre where that puts it there (its surface meets the
        # depth there), else a drag (in the image plane)
        cu, cv_ = np.round(centre_px(guess.T_world_obj)).astype(int)
        T_p = None
        if 0 <= cu < m.camera.width and 0 <= cv_ < m.camera.height:
            T_p = place_at_pixel(m.camera, m.T_world_cam(frame), depth, int(cu), int(cv_),
                                 target.mesh, m.pose(obj)[:3, :3], w.editor.ui_renderer)
        if T_p is not None and np.linalg.norm(centre_px(T_p) - centre_px(guess.T_world_obj)) \
                < 1.0 and abs(_cam_z(T_cw, T_p, centre) - _cam_z(T_cw, guess.T_world_obj,
                                                                 centre)) < PLACE_AGREE_M:
            d.key(Qt.Key.Key_P, what="P")
            click_pixel(d, int(cu), int(cv_), "place click")
        delta = centre_px(guess.T_world_obj) - centre_px(m.pose(obj))
        us, vs = drawn_pixels(d, obj)
        if len(us) and np.abs(delta).max() >= 1.0:
            su, sv = interior_pixel(us, vs)
            d.drag(w.view.viewport(), w.view.view_pos_of_pixel(su, sv),
                   w.view.view_pos_of_pixel(su + delta[0], sv + delta[1]),
                   Qt.KeyboardModifier.NoModifier, what="drag")
            reselect_if_lost(d, obj, log)
    d.key(Qt.Key.Key_S, what="S")
    refine_until_settled(d)
    # the flip check: the colour score of the label against its half turns
    try:
        state, text = colour_state(w, obj, frame)
    except (ImportError, BadInput) as exc:  # the colour check cannot run: say so
        state, text = -1, f"colour check unavailable: {exc}"
        log.notes.append(text)
    if state == COLOUR_FLAGGED:
        log.notes.append(f"colour check: {text}: Shift+Y")
        undo_at = w.undo_stack.index()
        d.key(Qt.Key.Key_Y, Qt.KeyboardModifier.ShiftModifier, what="Shift+Y (flip)")
        refine_until_settled(d, at_least=1)
        try:
            state2, text2 = colour_state(w, obj, frame)
        except (ImportError, BadInput):
            state2, text2 = -1, ""
        if state2 == COLOUR_FLAGGED or _colour_score(text2) < _colour_score(text):
            log.notes.append(f"turned: {text2}: undone")
            while w.undo_stack.index() > undo_at:
                d.key(Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier, what="Ctrl+Z")
    log.actions = d.log.actions - a0
    log.seconds = time.monotonic() - t0
    return log


def _cam_z(T_cam_world: np.ndarray, T_world_obj: np.ndarray, centre: np.ndarray) -> float:
    """Camera depth (metres) of the object's centre."""
    c = T_world_obj[:3, :3] @ centre + T_world_obj[:3, 3]
    return float((T_cam_world[:3, :3] @ c + T_cam_world[:3, 3])[2])


def _model_path(m, obj_id: int) -> Path:
    from labeller.formats.models import resolve_model_path

    return resolve_model_path(m.object(obj_id).model, m.root, m.models_dir)


def refine(d: Driver) -> None:
    from PySide6.QtCore import Qt

    d.key(Qt.Key.Key_R, what="R")
    d.wait(d.w.refiner.idle, "refine")
    d.settle()


def _colour_score(text: str) -> float:
    """The score in a colour check's text ("colour 0.41 flip suspected"), -inf if none."""
    parts = text.split()
    try:
        return float(parts[1])
    except (IndexError, ValueError):
        return float("-inf")


def refine_until_settled(d: Driver, at_least: int | None = None) -> None:
    """R, at least `at_least` (default Settings.refines) times, then again while the
    notice says the last one moved the object (at most Settings.max_refines): what the
    notice shows, "moved 4.1 mm, turned 0.3 deg", is what a person goes by."""
    n_min = d.settings.refines if at_least is None else at_least
    for i in range(d.settings.max_refines):
        refine(d)
        res = d.w.refiner.last_result
        settled = res is None or res.T_world_obj is None or (
            res.moved_m < SETTLED_MM / 1000 and res.turned_deg < SETTLED_DEG)
        if i + 1 >= n_min and settled:
            return


def colour_state(w, obj_id: int, frame: int) -> tuple[int, str]:
    """The colour check of object obj_id in `frame` as the propagation preview shows it
    (state, text)."""
    from labeller.annotate.refine import scene_labeller
    from labeller.formats.labels import COLOUR_STATE_NAMES

    m = w.model
    objs = m.posed_objects()
    k = next(i for i, o in enumerate(objs) if o.obj_id == obj_id)
    fl = scene_labeller(m.scene, objs)
    T_cam_obj, views, *_ = fl.analyse(np.asarray(m.T_world_cam(frame), np.float64),
                                      m.scene.depth(frame))
    c = fl.colour(k, views[k], T_cam_obj[k], m.scene.rgb(frame))
    return int(c.state), f"colour {c.score:.2f} {COLOUR_STATE_NAMES[int(c.state)]}"


# -- the whole run ----------------------------------------------------------------------------

def run_annotator(window, scene: Path, settings: Settings | None = None) -> RunLog:
    """Annotate the open raw scene `scene` (the window shows it) as described above."""
    from PySide6.QtCore import Qt

    from labeller.formats.annotations import AnnotationDocument

    settings = settings or Settings()
    log = RunLog()
    d = Driver(window, log, settings)
    w = window
    t0 = time.monotonic()
    if not w.model.has_trajectory:
        d.click(w.banner.action, what="Run tracking")
        d.wait(lambda: w.model.has_trajectory and not (w.tracker.task and w.tracker.task.running()),
               "tracking")
        d.settle()
    log.track_s = time.monotonic() - t0
    t1 = time.monotonic()
    d.key(Qt.Key.Key_G, what="G")
    d.key(Qt.Key.Key_M, Qt.KeyboardModifier.ControlModifier, what="Ctrl+M")
    gt = AnnotationDocument.read(scene / "gt" / "annotations.json")
    gt_ids = {o.class_name: o.id for o in gt.objects}
    combo = w.panel.class_combo
    for i in range(combo.count()):
        name = str(combo.itemData(i))
        if name in gt_ids:
            log.objects.append(annotate_object(d, scene, name, gt_ids[name]))
    d.key(Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier, what="Ctrl+S")
    log.annotate_s = time.monotonic() - t1
    return log


# -- scoring ----------------------------------------------------------------------------------

@dataclass
class Score:
    class_name: str
    symmetric: bool
    adds_mm: float
    add_mm: float
    rot_deg: float          # rotation error, or the symmetry axis' angle when symmetric
    flipped: bool

    @property
    def ok(self) -> bool:
        dist = self.adds_mm if self.symmetric else self.add_mm
        return dist <= TARGET_MM and self.rot_deg <= TARGET_DEG and not self.flipped


def score_scene(scene: Path, frames: dict[str, int]) -> list[Score]:
    """Score annotations.json against gt/, each object in the camera frame of the frame it
    was placed on (frames: class -> frame)."""
    from labeller.core.classes import BY_NAME
    from labeller.core.poses import add_error, adds_error, inv_pose, rotation_error_deg
    from labeller.formats.annotations import AnnotationDocument
    from labeller.formats.models import load_model, resolve_model_path
    from labeller.formats.trajectory import Trajectory

    doc = AnnotationDocument.read(scene / "annotations.json")
    gt = {o.class_name: o for o in AnnotationDocument.read(scene / "gt" / "annotations.json").objects}
    traj = Trajectory.read(scene / "trajectory.txt")
    gt_traj = Trajectory.read(scene / "gt" / "trajectory.txt")
    out = []
    for o in doc.objects:
        g = gt[o.class_name]
        t = frames[o.class_name]
        pts = load_model(resolve_model_path(o.model, scene, None)).sample_points(2000)
        T_est = inv_pose(traj[t]) @ o.T_world_obj
        T_gt = inv_pose(gt_traj[t]) @ g.T_world_obj
        axis = BY_NAME[o.class_name].symmetry_axis
        if axis is not None:
            a = np.asarray(axis, np.float64) / np.linalg.norm(axis)
            cos = float(np.clip((T_est[:3, :3] @ a) @ (T_gt[:3, :3] @ a), -1, 1))
            rot = math.degrees(math.acos(cos))
        else:
            rot = rotation_error_deg(T_est, T_gt)
        out.append(Score(o.class_name, axis is not None, adds_error(pts, T_est, T_gt) * 1000,
                         add_error(pts, T_est, T_gt) * 1000, rot, rot > FLIP_DEG))
    return out


def report(seed: int, log: RunLog, scores: list[Score], print_fn=print) -> bool:
    by = {s.class_name: s for s in scores}
    print_fn(f"seed {seed}: tracking {log.track_s:.1f} s, annotating {log.annotate_s:.1f} s, "
             f"{log.actions} actions")
    print_fn(f"  {'object':16s} {'frame':>5s} {'acts':>4s} {'s':>6s} {'yaw':>6s} "
             f"{'ADD-S mm':>8s} {'ADD mm':>8s} {'rot deg':>8s}  flip  ok")
    for o in log.objects:
        s = by.get(o.class_name)
        if s is None:
            print_fn(f"  {o.class_name:16s} not saved")
            continue
        rot_name = "axis" if s.symmetric else "rot"
        print_fn(f"  {o.class_name:16s} {o.frame:5d} {o.actions:4d} {o.seconds:6.1f} "
                 f"{o.yaw_deg:+6.0f} {s.adds_mm:8.2f} {s.add_mm:8.2f} {s.rot_deg:8.2f}"
                 f"  {'FLIP' if s.flipped else '-':4s}  {'yes' if s.ok else 'no'}"
                 f"  ({rot_name}{'; ' + '; '.join(o.notes) if o.notes else ''})")
    n_ok = sum(s.ok for s in scores)
    total_s = log.track_s + log.annotate_s
    met = (n_ok == 6 and not any(s.flipped for s in scores) and log.actions <= TARGET_ACTIONS
           and total_s <= TARGET_S)
    print_fn(f"  within {TARGET_MM:g} mm / {TARGET_DEG:g} deg: {n_ok} of {len(scores)} "
             f"(target 6); flips: {sum(s.flipped for s in scores)} (target 0); actions: "
             f"{log.actions} (target <= {TARGET_ACTIONS}); time: {total_s:.0f} s with "
             f"tracking, {log.annotate_s:.0f} s without (target <= {TARGET_S:.0f} s): "
             f"{'MET' if met else 'NOT MET'}")
    return met


# -- the command ------------------------------------------------------------------------------

def _quiet_message_boxes(record: list[str]) -> None:
    """Message boxes would block an unattended run: record them instead."""
    from PySide6.QtWidgets import QMessageBox

    def box(kind):
        def f(parent, title, text, *a, **k):
            record.append(f"{kind}: {title}: {text}")
            return QMessageBox.StandardButton.Discard if kind == "question" \
                else QMessageBox.StandardButton.Ok
        return f

    for kind in ("critical", "warning", "information", "question"):
        setattr(QMessageBox, kind, staticmethod(box(kind)))


def run_seed(seed: int, work: Path, frames: int, app) -> bool:
    from PySide6.QtTest import QTest

    from labeller.gui.window import MainWindow
    from labeller.synth import SynthConfig, run

    scene = work / f"seed{seed}"
    t0 = time.monotonic()
    run(SynthConfig(scene, frames=frames, seed=seed, overwrite=True))
    print(f"seed {seed}: synth {time.monotonic() - t0:.1f} s ({scene})", flush=True)
    w = MainWindow()
    w.show()
    w.activateWindow()
    QTest.qWaitForWindowActive(w)
    try:
        if not w.open_scene(scene):
            raise RuntimeError(f"the window did not open {scene}")
        log = run_annotator(w, scene)
        scores = score_scene(scene, {o.class_name: o.frame for o in log.objects})
        return report(seed, log, scores)
    finally:
        w.close_scene()
        w.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, action="append", help="synth seed (repeat; default 3 and 4)")
    p.add_argument("--work", type=Path, help="folder for the scenes (default: a temporary one)")
    p.add_argument("--frames", type=int, default=120, help="frames per scene")
    args = p.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    seeds = args.seed or [3, 4]
    boxes: list[str] = []
    _quiet_message_boxes(boxes)
    with tempfile.TemporaryDirectory(prefix="annotator-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("LABELLER_CONFIG_DIR", str(work / "config"))
        results = [run_seed(s, work, args.frames, app) for s in seeds]
    for b in boxes:
        print(f"message box: {b}")
    print(f"load average: {open('/proc/loadavg').read().split()[:3]}; cpu cores: {os.cpu_count()}")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
