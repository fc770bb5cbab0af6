"""Frame time of the 3D view at 640x480 while orbiting, against Open3D's GPU-style renderer.

Measures, in one run, on a tracked 640x480 synthetic scene with 6 objects (the YCB
meshes, 16k triangles each, when ../shared/data/ycb_models is there):

  core/orbit     labeller.annotate.scene_view: one 640x480 picture per orbit step (cloud
                 projected and z-buffered, models ray-cast and shaded, path and frustum)
  core/drag      the same at half resolution (what is drawn while a mouse button is held)
  peer/filament  Open3D's OffscreenRenderer (Filament on Mesa's software Vulkan,
                 llvmpipe) drawing the same cloud (and the meshes, unlit) from the same
                 camera, per step; in a child process with a time limit
  gui/orbit      the real dock (offscreen), its widget 640x480: orbit drags sent as signals
                 back to back, pictures drawn per second (QImage upload included; while
                 requests keep coming the dock draws at half size, as during a drag)

Usage: .venv/bin/python bench/view3d.py [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
YCB = ROOT.parent / "shared" / "data" / "ycb_models"
W, H = 640, 480


def make_scene(out: Path) -> Path:
    from labeller.synth import SynthConfig, run
    from labeller.track import TrackConfig
    from labeller.track import run as track

    run(SynthConfig(out, frames=30, seed=11, with_annotations=True, n_objects=6,
                    models_dir=YCB if YCB.is_dir() else None))
    track(TrackConfig(out, force=True))
    return out


def _setup(scene: Path):
    from labeller.annotate.document import DocumentModel
    from labeller.annotate.scene_cloud import load_scene_cloud
    from labeller.annotate.scene_view import OrbitCamera, camera_path, scene_up_world
    from labeller.geometry.overlay import OverlayObject

    m = DocumentModel.open(scene, YCB if YCB.is_dir() else None)
    cloud = load_scene_cloud(m.scene.paths.cloud)
    assert m.trajectory is not None
    poses = {t: T for t in m.trajectory.frame_ids if (T := m.T_world_cam(t)) is not None}
    objs = []
    for o in m.objects():
        mesh = m.object_model(o.id)
        assert mesh is not None
        objs.append(OverlayObject(o.id, mesh, o.T_world_obj, m.class_color(o.class_name)))
    focus = np.array([T[:3, 3] for T in poses.values()] + [o.T_world_obj[:3, 3] for o in objs])
    view = OrbitCamera.fit(focus, scene_up_world(list(poses.values())), poses[0][:3, 2],
                           margin=1.1, min_radius_m=0.3)
    return m, cloud, objs, camera_path(poses, 0, m.camera), view


def bench_core(cloud, objs, path, view, steps: int, scale: float) -> float:
    from labeller.annotate.scene_view import SceneViewRenderer

    r = SceneViewRenderer(cloud)
    w, h = int(W * scale), int(H * scale)
    r.render(view, w, h, objs, objs[0].obj_id, path, 0.05)  # casters built
    t0 = time.perf_counter()
    for _ in range(steps):
        view = view.orbit(15, 3)
        r.render(view, w, h, objs, objs[0].obj_id, path, 0.05)
    return (time.perf_counter() - t0) / steps


def bench_filament(cloud, objs, view, steps: int, meshes: bool) -> tuple[float, float]:
    """(seconds to the first picture, seconds per picture after) of Open3D's
    OffscreenRenderer: the cloud (unlit points), and the meshes (unlit) with `meshes`."""
    import open3d as o3d
    from open3d.visualization import rendering

    t0 = time.perf_counter()
    r = rendering.OffscreenRenderer(W, H)
    r.scene.set_background([0.15, 0.16, 0.18, 1.0])
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(cloud.points_world.astype(float)))
    pcd.colors = o3d.utility.Vector3dVector(cloud.colors_rgb / 255.0)
    pm = rendering.MaterialRecord()
    pm.shader, pm.point_size = "defaultUnlit", 2.0
    r.scene.add_geometry("cloud", pcd, pm)
    for o in objs if meshes else ():
        mesh = o.model.legacy_mesh().transform(o.T_world_obj)
        mesh.compute_vertex_normals()
        mm = rendering.MaterialRecord()
        mm.shader = "defaultUnlit"  # the lit shader is slower still
        mm.base_color = [c / 255.0 for c in o.color_rgb] + [1.0]
        r.scene.add_geometry(f"obj{o.obj_id}", mesh, mm)

    def draw(v) -> None:
        cam = v.intrinsics(W, H)
        r.setup_camera(cam.K, np.linalg.inv(v.T_world_view), W, H)
        np.asarray(r.render_to_image())

    draw(view)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        view = view.orbit(15, 3)
        draw(view)
    return first, (time.perf_counter() - t0) / steps


def peer_in_subprocess(scene: Path, steps: int, meshes: bool, timeout_s: float) -> str:
    """Run `bench_filament` in a child process (Filament on llvmpipe can take minutes per
    picture with the meshes): its result line, or what stopped it."""
    cmd = [sys.executable, __file__, "--peer", str(scene), "--steps", str(steps)]
    if meshes:
        cmd.append("--meshes")
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return f"no result within {timeout_s:.0f} s"
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("PEER ")]
    if not lines:
        return f"failed (exit {out.returncode}): {out.stderr.strip().splitlines()[-1:]}"
    return lines[-1][5:]


def bench_gui(scene: Path, steps: int) -> float:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from labeller.gui.window import MainWindow

    app = QApplication.instance() or QApplication([])
    os.environ["LABELLER_CONFIG_DIR"] = tempfile.mkdtemp()
    w = MainWindow(YCB if YCB.is_dir() else None)
    w.show()
    assert w.open_scene(scene)
    c = w.view3d
    c.toggle(True)
    c.dock.setFloating(True)
    c.widget.setFixedSize(W, H)
    app.processEvents()
    c.render_now()
    n0 = c.renders
    t0 = time.perf_counter()
    for _ in range(steps):
        c.widget.orbitDragged.emit(15.0, 3.0)
        app.processEvents()
        c.render_now()
    dt = time.perf_counter() - t0
    size = c.last_image.rgb.shape if c.last_image is not None else None
    w.close_scene()
    w.close()
    print(f"gui picture size: {size}")
    return (c.renders - n0) / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--peer-timeout", type=float, default=120.0)
    ap.add_argument("--peer", type=Path, help=argparse.SUPPRESS)  # the child process
    ap.add_argument("--meshes", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.peer is not None:
        _, cloud, objs, _, view = _setup(a.peer)
        first, per = bench_filament(cloud, objs, view, a.steps, a.meshes)
        print(f"PEER {per * 1e3:7.1f} ms/picture  ({1 / per:5.1f}/s; first picture after "
              f"{first:.2f} s)", flush=True)
        return
    with tempfile.TemporaryDirectory() as tmp:
        scene = make_scene(Path(tmp) / "scene")
        _, cloud, objs, path, view = _setup(scene)
        tris = [len(o.model.triangles) for o in objs]
        print(f"scene: {W}x{H}, {len(objs)} objects, triangles/object {min(tris)}..{max(tris)}, "
              f"cloud {len(cloud)} points (file {cloud.n_points_file})", flush=True)
        full = bench_core(cloud, objs, path, view, a.steps, 1.0)
        drag = bench_core(cloud, objs, path, view, a.steps, 0.5)
        print(f"core/orbit     {full * 1e3:7.1f} ms/picture  ({1 / full:5.1f}/s)", flush=True)
        print(f"core/drag      {drag * 1e3:7.1f} ms/picture  ({1 / drag:5.1f}/s, half size)",
              flush=True)
        print(f"gui/orbit      {bench_gui(scene, a.steps):7.1f} pictures/s drawn in the dock",
              flush=True)
        for name, steps, meshes in (("cloud", 5, False), ("cloud+meshes", 2, True)):
            peer = peer_in_subprocess(scene, steps, meshes, a.peer_timeout)
            print(f"peer/filament-{name:13s}{peer}", flush=True)
            if peer.split()[0].replace(".", "", 1).isdigit():
                print(f"ratio peer/filament-{name} vs core/orbit: "
                      f"{float(peer.split()[0]) / (full * 1e3):.1f}x the time per picture",
                      flush=True)
        print(f"cpu cores: {os.cpu_count()}")


if __name__ == "__main__":
    main()
