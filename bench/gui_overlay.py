"""Overlay updates per second while dragging one of 6 objects at 640x480 (target: >= 20/s).

Measures, in one run, on a synthetic 640x480 scene with 6 objects (the YCB meshes, 16k
triangles each, when ../shared/data/ycb_models is there; procedural stand-ins otherwise):

  core/full      labeller.geometry.overlay: full-resolution render + RGBA composition per step
  core/preview   the same at half resolution (the preview shown during a drag)
  core/rescan    every object recast each step (a camera change: scrubbing frames)
  core/rescan-pv the same as a half-resolution preview
  peer/naive     rebuild one ray-casting scene of all objects and cast the whole frame
                 per step (labeller.geometry.render.ObjectRenderer used directly)
  gui/drag       the real window (offscreen): mouse-move events drive a drag as fast as
                 the UI thread takes them; counts overlays actually drawn per second
                 (worker thread, stale requests dropped, QPixmap upload included), once in
                 the silhouette style and once textured (the window's default)

  style/*        milliseconds per overlay at 640x480 in each style (textured, silhouette,
                 outline; axes on for the textured row "textured+axes"), for a drag (one
                 object recast per step) and a frame change (all six recast), with the
                 ratio textured / silhouette

Usage: .venv/bin/python bench/gui_overlay.py [--steps 60] [--seconds 4]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
YCB = ROOT.parent / "shared" / "data" / "ycb_models"


def make_scene(out: Path) -> Path:
    from labeller.synth import SynthConfig, run

    run(SynthConfig(out, frames=2, seed=11, with_annotations=True, n_objects=6,
                    models_dir=YCB if YCB.is_dir() else None))
    return out


def core(scene: Path, steps: int) -> dict[str, float]:
    from labeller.annotate.document import DocumentModel
    from labeller.annotate.pose_edit import drag_translate
    from labeller.geometry.overlay import OverlayObject, OverlayRenderer, model_centre
    from labeller.geometry.render import ObjectRenderer

    m = DocumentModel.open(scene, YCB if YCB.is_dir() else None)
    cam = m.camera
    T_wc = m.T_world_cam(0)
    objs = [OverlayObject(o.id, m.object_model(o.id), o.T_world_obj, m.class_color(o.class_name))
            for o in m.objects()]
    tris = [len(o.model.triangles) for o in objs]
    print(f"scene: {cam.width}x{cam.height}, {len(objs)} objects, triangles/object "
          f"{min(tris)}..{max(tris)} ({'YCB meshes' if YCB.is_dir() else 'procedural'})")
    k = 0
    c = model_centre(objs[k].model)

    def dragged(step: int) -> list:
        out = list(objs)
        T = drag_translate(objs[k].T_world_obj, T_wc, cam, c, 2.0 * step, 1.0 * step)
        out[k] = OverlayObject(objs[k].obj_id, objs[k].model, T, objs[k].color_rgb)
        return out

    res = {}
    for name, preview in (("core/full", False), ("core/preview", True)):
        r = OverlayRenderer()
        r.render(cam, T_wc, objs, preview=preview)  # warm: casters built, others cached
        t0 = time.perf_counter()
        for s in range(1, steps + 1):
            r.render(cam, T_wc, dragged(s), selected=objs[k].obj_id, preview=preview)
        res[name] = steps / (time.perf_counter() - t0)
    for name, preview in (("core/rescan", False), ("core/rescan-pv", True)):
        r = OverlayRenderer()
        r.render(cam, T_wc, objs, preview=preview)
        t0 = time.perf_counter()
        for s in range(1, steps + 1):
            T = T_wc.copy()
            T[0, 3] += 0.001 * s  # the camera moves: every object is recast
            r.render(cam, T, objs, preview=preview)
        res[name] = steps / (time.perf_counter() - t0)
    n = max(steps // 3, 5)
    t0 = time.perf_counter()
    for s in range(1, n + 1):
        objs_s = dragged(s)
        ObjectRenderer([(o.obj_id, o.model, o.T_world_obj) for o in objs_s]).render(cam, T_wc)
    res["peer/naive"] = n / (time.perf_counter() - t0)
    return res


def styles(scene: Path, steps: int) -> dict[str, tuple[float, float]]:
    """Style name -> (ms per overlay while dragging one object, ms per overlay when the
    camera moves and every object is recast), full resolution."""
    from labeller.annotate.document import DocumentModel
    from labeller.annotate.pose_edit import drag_translate
    from labeller.geometry.overlay import OverlayObject, OverlayRenderer, OverlayStyle, model_centre

    m = DocumentModel.open(scene, YCB if YCB.is_dir() else None)
    cam = m.camera
    T_wc = m.T_world_cam(0)
    objs = [OverlayObject(o.id, m.object_model(o.id), o.T_world_obj, m.class_color(o.class_name))
            for o in m.objects()]
    k = 0
    c = model_centre(objs[k].model)
    out = {}
    for name, style in (("silhouette", OverlayStyle(mode="silhouette")),
                        ("textured", OverlayStyle(mode="textured")),
                        ("textured+axes", OverlayStyle(mode="textured", axes=True)),
                        ("outline", OverlayStyle(mode="outline"))):
        r = OverlayRenderer()
        r.render(cam, T_wc, objs, style=style)  # warm: casters built, colours loaded
        t0 = time.perf_counter()
        for s in range(1, steps + 1):
            moved = list(objs)
            T = drag_translate(objs[k].T_world_obj, T_wc, cam, c, 2.0 * s, 1.0 * s)
            moved[k] = OverlayObject(objs[k].obj_id, objs[k].model, T, objs[k].color_rgb)
            r.render(cam, T_wc, moved, selected=objs[k].obj_id, style=style)
        drag_ms = 1000 * (time.perf_counter() - t0) / steps
        t0 = time.perf_counter()
        for s in range(1, steps + 1):
            T = T_wc.copy()
            T[0, 3] += 0.001 * s
            r.render(cam, T, objs, style=style)
        out[name] = (drag_ms, 1000 * (time.perf_counter() - t0) / steps)
    return out


def gui_drag(scene: Path, seconds: float, mode: str = "textured") -> tuple[float, float, int, int]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["LABELLER_CONFIG_DIR"] = tempfile.mkdtemp(prefix="labeller_bench_cfg_")
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    from labeller.gui.app import MainWindow

    app = QApplication.instance() or QApplication([])
    w = MainWindow(YCB if YCB.is_dir() else None)
    w.resize(1280, 800)
    w.show()
    assert w.open_scene(scene)
    from dataclasses import replace

    w.state.overlay_style = replace(w.state.overlay_style, mode=mode)
    w.request_render()

    def settle():
        t = time.perf_counter()
        while not w.render_idle() and time.perf_counter() - t < 30:
            app.processEvents()
            time.sleep(0.002)

    settle()
    inst = w.view._inst
    ids, counts = np.unique(inst[inst > 0], return_counts=True)
    obj = int(ids[np.argmax(counts)])
    vs, us = np.nonzero(inst == obj)
    u, v = int(us[len(us) // 2]), int(vs[len(vs) // 2])
    vp = w.view.viewport()
    start = w.view.view_pos_of_pixel(u, v)

    def send(kind, pos: QPoint):
        ev = QMouseEvent(kind, QPointF(pos), QPointF(vp.mapToGlobal(pos)), Qt.LeftButton,
                         Qt.LeftButton if kind != QMouseEvent.MouseButtonRelease else Qt.NoButton,
                         Qt.NoModifier)
        QApplication.sendEvent(vp, ev)

    send(QMouseEvent.MouseButtonPress, start)
    assert w.view.dragging, "the drag did not start"
    n_shown, moves, last = 0, 0, w.service.shown_gen
    dropped0 = w.service.dropped
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        moves += 1
        d = int(40 * np.sin(moves / 15.0))
        send(QMouseEvent.MouseMove, start + QPoint(d, d // 2))
        app.processEvents()
        if w.service.shown_gen != last:
            last = w.service.shown_gen
            n_shown += 1
        time.sleep(0.004)  # a mouse reports at ~250 Hz
    dt = time.perf_counter() - t0
    dropped = w.service.dropped - dropped0
    send(QMouseEvent.MouseButtonRelease, start + QPoint(41, 20))
    settle()
    assert w.undo_stack.count() == 1, "the drag should be one undo step"
    w.undo_stack.undo()  # back to the saved state: closes without asking
    w.close()
    return n_shown / dt, moves / dt, n_shown, dropped


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--seconds", type=float, default=4.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        scene = make_scene(Path(d) / "scene")
        res = core(scene, args.steps)
        for k, v in res.items():
            print(f"{k:14s} {v:7.1f} updates/s")
        print(f"ratio core/full vs peer/naive: {res['core/full'] / res['peer/naive']:.1f}x")
        st = styles(scene, args.steps)
        for k, (drag_ms, rescan_ms) in st.items():
            print(f"style/{k:14s} drag {drag_ms:6.1f} ms/overlay   frame change {rescan_ms:6.1f} "
                  "ms/overlay")
        sd, sr = st["silhouette"]
        td, tr = st["textured"]
        print(f"ratio textured / silhouette: drag {td / sd:.2f}x, frame change {tr / sr:.2f}x")
        # QApplication once per process: both drags run in the same one.
        for mode in ("silhouette", "textured"):
            ups, mps, n, dropped = gui_drag(scene, args.seconds, mode)
            print(f"gui/drag {mode:10s} {ups:7.1f} overlays drawn/s  ({n} drawn, {mps:.0f} mouse "
                  f"moves/s sent, {dropped} stale requests dropped; target >= 20)")
    print(f"cpu cores: {os.cpu_count()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
