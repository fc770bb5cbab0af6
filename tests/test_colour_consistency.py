"""The colour check (flip QA): the score, the decision rule, the turns a shape allows, the
labels.h5 fields, and what propagate flags on synthetic scenes and on real PoseCNN frames."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from labeller.core.camera import CameraIntrinsics
from labeller.core.classes import BY_NAME
from labeller.core.errors import FormatError
from labeller.core.poses import make_pose
from labeller.formats.annotations import AnnotationDocument
from labeller.formats.labels import (
    COLOUR_FLAGGED,
    COLOUR_NOT_COMPUTED,
    COLOUR_OK,
    COLOUR_UNDECIDABLE,
    Labels,
    LabelsWriter,
    flag_rule,
)
from labeller.formats.models import resolve_model_path
from labeller.geometry import colour_consistency as cc
from labeller.geometry.textured_render import TexturedRenderer, load_textured_model
from labeller.propagate import PropagateConfig, run
from labeller.synth.procedural import box_mesh, ply_bytes
from tests.helpers import POSECNN, SHARED_DATA
from tests.test_labels import OBJECTS, meta, record

YCB = SHARED_DATA / "ycb_models"


# --- the score ---------------------------------------------------------------------------

def _texture(seed: int, h: int = 80, w: int = 100) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.uniform(0, 1, (h // 8, w // 8)).astype(np.float32), (w, h),
                     interpolation=cv2.INTER_CUBIC)
    return np.clip(img, 0, 1)


def test_gradient_correlation_is_robust_to_lighting_not_to_another_print():
    y = _texture(0)
    mask = np.zeros(y.shape, bool)
    mask[5:-5, 5:-5] = True
    mask[30:40, 40:60] = False  # an occluder inside
    g = cc.luminance_gradients(y, mask, 1.5)
    inner = cc.erode(mask, 1)  # where the 3x3 gradient sees only masked pixels
    assert cc.gradient_correlation(g, g, inner) == pytest.approx(1.0)
    ramp = np.linspace(0, 0.3, y.shape[1], dtype=np.float32)[None, :]
    lit = 0.5 * y + 0.2 + ramp  # dimmer, an offset and uneven light across the object
    assert cc.gradient_correlation(g, cc.luminance_gradients(lit, mask, 1.5), inner) > 0.95
    other = cc.luminance_gradients(_texture(1), mask, 1.5)
    assert abs(cc.gradient_correlation(g, other, inner)) < 0.3
    flat = np.full(y.shape, 0.4, np.float32)
    assert np.isnan(cc.gradient_correlation(g, cc.luminance_gradients(flat, mask, 1.5), inner))
    assert np.isnan(cc.gradient_correlation(g, g, np.zeros_like(mask)))


def test_masked_blur_ignores_what_lies_outside_the_mask():
    y = np.full((20, 20), 0.5, np.float32)
    mask = np.zeros((20, 20), bool)
    mask[5:15, 5:15] = True
    y[~mask] = 1.0  # a bright background right at the silhouette
    out = cc.masked_blur(y, mask, 2.0)
    assert np.allclose(out[mask], 0.5, atol=1e-5) and (out[~mask] == 0).all()


def test_decide_turn_rule():
    s = cc.DEFAULT_SETTINGS
    # the frame clearly prefers the turned model: flip suspected
    assert cc.decide_turn(0.05, 0.60, 0.1, s) == COLOUR_FLAGGED
    # the label wins, or the turn wins by less than the margin: ok
    assert cc.decide_turn(0.60, 0.05, 0.1, s) == COLOUR_OK
    assert cc.decide_turn(0.50, 0.55, 0.1, s) == COLOUR_OK
    # the two renders look alike (symmetric print): undecidable whatever the frame says
    assert cc.decide_turn(0.40, 0.45, 0.97, s) == COLOUR_UNDECIDABLE
    assert cc.decide_turn(0.05, 0.40, 0.60, s) == COLOUR_UNDECIDABLE
    # the frame looks like neither
    assert cc.decide_turn(0.05, 0.10, -0.2, s) == COLOUR_UNDECIDABLE
    assert cc.decide_turn(float("nan"), 0.5, 0.1, s) == COLOUR_UNDECIDABLE
    # the margin scales with how different the renders are: the same gap flags
    # between very different renders, not between similar ones
    assert cc.decide_turn(0.30, 0.50, 0.0, s) == COLOUR_OK  # need 0.25
    assert cc.decide_turn(0.30, 0.50, 0.35, s) == COLOUR_FLAGGED  # need 0.1625
    assert cc.decide_turn(0.30, 0.38, 0.35, s) == COLOUR_OK  # below min_gap
    r = cc.combine(0.4, [cc.TurnEvidence(0.4, 0.1, 0.0, COLOUR_OK),
                         cc.TurnEvidence(0.4, 0.3, 0.9, COLOUR_UNDECIDABLE)])
    assert r.state == COLOUR_UNDECIDABLE and r.turned_score == pytest.approx(0.3)
    r = cc.combine(0.1, [cc.TurnEvidence(0.1, 0.7, 0.0, COLOUR_FLAGGED),
                         cc.TurnEvidence(0.1, 0.3, 0.9, COLOUR_UNDECIDABLE)])
    assert r.state == COLOUR_FLAGGED and r.state_name == "flip suspected"


def test_shape_half_turns_of_a_box_and_of_a_box_with_a_knob():
    v, f, _ = box_mesh((0.08, 0.12, 0.05), n=2)
    turns = cc.shape_half_turns(v, f)
    assert len(turns) == 3  # about x, y and z: a box looks the same in depth
    for T in turns:
        assert np.allclose(T[:3, :3] @ T[:3, :3], np.eye(3))
        assert np.allclose(np.trace(T[:3, :3]), -1.0)  # 180 degrees
    # a knob on the +x face: only the turn about x keeps it where it was
    kv, kf, _ = box_mesh((0.03, 0.03, 0.03), center=(0.055, 0.0, 0.0), n=1)
    v2 = np.concatenate([v, kv])
    f2 = np.concatenate([f, kf + len(v)])
    turns2 = cc.shape_half_turns(v2, f2)
    assert len(turns2) == 1
    assert np.allclose(turns2[0][:3, :3], np.diag([1.0, -1.0, -1.0]))


# --- a textured box rendered into a frame --------------------------------------------------

CAM = CameraIntrinsics(320, 240, 300.0, 300.0, 159.5, 119.5)
BOX_SIZE = (0.10, 0.14, 0.06)


def _box_model(tmp_path: Path, name: str, colour_fn) -> Path:
    """A finely divided box PLY whose vertex colours are colour_fn(vertices) (V, 3) uint8."""
    v, f, _ = box_mesh(BOX_SIZE, n=40)
    p = tmp_path / f"{name}.ply"
    p.write_bytes(ply_bytes(v, f, colour_fn(v)))
    return p


def _asymmetric(v: np.ndarray) -> np.ndarray:
    # stripes whose spacing grows along +y and a dark patch on the +x half: a half turn
    # about z maps it onto something else
    s = 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * (v[:, 1] + 0.07) ** 2 * 400))
    dark = (v[:, 0] > 0.01) & (v[:, 1] > 0.0)
    g = np.where(dark, 40, 80 + 150 * s)
    return np.stack([g, 0.8 * g, 0.5 * g + 40], -1).astype(np.uint8)


def _symmetric(v: np.ndarray) -> np.ndarray:
    # the same under (x, y) -> (-x, -y): stripes of |y| and rings of the distance from z
    s = 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * np.abs(v[:, 1]) * 40))
    r = np.hypot(v[:, 0], v[:, 1])
    g = 60 + 120 * s + 60 * (np.sin(r * 150) > 0)
    return np.stack([g, g, 0.7 * g], -1).astype(np.uint8)


def _frame_of(model_path: Path, T_cam_obj: np.ndarray, seed: int = 0):
    """(rgb (H, W, 3) uint8, visible mask (H, W)) of the model at its true pose, lit
    differently from the renderer (gain, offset, a ramp) with sensor noise."""
    m = load_textured_model(model_path)
    r = TexturedRenderer([(1, m, np.eye(4))]).render(CAM, np.linalg.inv(T_cam_obj))
    ramp = np.linspace(0.7, 1.1, CAM.width, dtype=np.float32)[None, :, None]
    rgb = 0.1 + 0.75 * r.shaded() * ramp
    rgb = rgb + np.random.default_rng(seed).normal(0, 0.02, rgb.shape)
    rgb = np.where((r.inst > 0)[..., None], rgb, 0.35)
    return np.clip(rgb * 255, 0, 255).astype(np.uint8), r.inst > 0


def _check(model_path: Path, T_cam_obj_true: np.ndarray, T_label: np.ndarray) -> cc.ColourResult:
    rgb, visible = _frame_of(model_path, T_cam_obj_true)
    m = load_textured_model(model_path)
    T_world_obj = np.eye(4)
    renderer = cc.AlbedoCaster([(1, m, T_world_obj)])
    turns = cc.model_half_turns(model_path)
    roi = (0, 0, CAM.width, CAM.height)
    return cc.check_label(renderer, CAM, 1, T_world_obj, T_label, turns, roi, visible, rgb)


def _box_pose() -> np.ndarray:
    from labeller.core.poses import axis_angle_to_matrix

    R = axis_angle_to_matrix(np.array([1.0, 0.0, 0.0]), np.radians(150)) \
        @ axis_angle_to_matrix(np.array([0.0, 0.0, 1.0]), np.radians(25))
    return make_pose(R, (0.01, -0.01, 0.45))


def test_flipped_label_is_flagged_correct_one_is_ok(tmp_path):
    p = _box_model(tmp_path, "asym", _asymmetric)
    T = _box_pose()
    ok = _check(p, T, T)
    assert ok.state == COLOUR_OK and ok.score > 0.5, ok
    z_turn = next(S for S in cc.model_half_turns(p) if np.allclose(S[:3, :3], np.diag([-1.0, -1.0, 1.0])))
    bad = _check(p, T, T @ z_turn)
    assert bad.state == COLOUR_FLAGGED, bad
    assert bad.turned_score > bad.score + 0.3


def test_vertex_coloured_model_scores_but_cannot_flag(tmp_path):
    """Propagation keeps a vertex-coloured model's scores but turns its "flagged" into
    undecidable: only a texture image carries the print a flip is judged by."""
    from labeller.geometry.textured_render import load_textured_model

    p = _box_model(tmp_path, "asym", _asymmetric)
    assert load_textured_model(p).colour_source == "vertex colours"
    T = _box_pose()
    z_turn = next(S for S in cc.model_half_turns(p) if np.allclose(S[:3, :3], np.diag([-1.0, -1.0, 1.0])))
    bad = _check(p, T, T @ z_turn)
    coarse = cc.coarse_colours(bad)
    assert bad.state == COLOUR_FLAGGED and coarse.state == COLOUR_UNDECIDABLE
    assert (coarse.score, coarse.turned_score) == (bad.score, bad.turned_score)
    ok = _check(p, T, T)
    assert cc.coarse_colours(ok) == ok


def test_symmetric_texture_is_undecidable_not_flagged(tmp_path):
    p = _box_model(tmp_path, "sym", _symmetric)
    T = _box_pose()
    z_turn = next(S for S in cc.model_half_turns(p) if np.allclose(S[:3, :3], np.diag([-1.0, -1.0, 1.0])))
    for label in (T, T @ z_turn):
        r = _check(p, T, label)
        assert r.state == COLOUR_UNDECIDABLE, r
        z = [t for t, S in zip(r.turns, cc.model_half_turns(p), strict=True)
             if np.allclose(S[:3, :3], np.diag([-1.0, -1.0, 1.0]))][0]
        assert z.s_self > 0.9  # the turned render is (nearly) the label's own render


def test_plain_model_reports_no_texture_and_tiny_object_not_computed(tmp_path):
    v, f, _ = box_mesh(BOX_SIZE, n=8)
    plain = tmp_path / "plain.ply"
    plain.write_bytes(ply_bytes(v, f, np.full((len(v), 3), 150, np.uint8)))
    T = _box_pose()
    r = _check(plain, T, T)
    assert r.state_name == "no texture" and np.isnan(r.score)
    p = _box_model(tmp_path, "asym", _asymmetric)
    rgb, visible = _frame_of(p, T)
    few = np.zeros_like(visible)
    few[np.nonzero(visible)[0][:50], np.nonzero(visible)[1][:50]] = True
    renderer = cc.AlbedoCaster([(1, load_textured_model(p), np.eye(4))])
    r = cc.check_label(renderer, CAM, 1, np.eye(4), T, cc.model_half_turns(p),
                       (0, 0, CAM.width, CAM.height), few, rgb)
    assert r.state == COLOUR_NOT_COMPUTED and np.isnan(r.score)


def test_large_object_is_checked_on_a_shrunk_image(tmp_path):
    """Above max_pixels the check runs at a lower resolution and decides the same."""
    import dataclasses

    p = _box_model(tmp_path, "asym", _asymmetric)
    T = _box_pose()
    T[2, 3] = 0.30  # near: ~15,000 visible pixels
    rgb, visible = _frame_of(p, T)
    assert visible.sum() > 2 * cc.DEFAULT_SETTINGS.max_pixels
    renderer = cc.AlbedoCaster([(1, load_textured_model(p), np.eye(4))])
    turns = cc.model_half_turns(p)
    z_turn = next(S for S in turns if np.allclose(S[:3, :3], np.diag([-1.0, -1.0, 1.0])))
    roi = (0, 0, CAM.width, CAM.height)
    full = dataclasses.replace(cc.DEFAULT_SETTINGS, max_pixels=10 ** 9)
    for label, want in ((T, COLOUR_OK), (T @ z_turn, COLOUR_FLAGGED)):
        shrunk = cc.check_label(renderer, CAM, 1, np.eye(4), label, turns, roi, visible, rgb)
        whole = cc.check_label(renderer, CAM, 1, np.eye(4), label, turns, roi, visible, rgb, full)
        assert shrunk.state == whole.state == want, (shrunk, whole)


def test_scaled_camera_keeps_pixel_centres():
    half = cc.scaled_camera(CAM, 2)
    assert (half.width, half.height) == (160, 120)
    # full-resolution pixels 2u and 2u + 1 have their centre at 2u + 0.5
    p = np.array([[0.02, -0.01, 0.5]])
    u_full = CAM.project(p)[0]
    u_half = half.project(p)[0]
    assert np.allclose(2 * u_half + 0.5, u_full)


# --- labels.h5 -----------------------------------------------------------------------------

def _write_labels(path: Path, colour_state=(COLOUR_OK, COLOUR_FLAGGED),
                  colour_score=(0.8, 0.05)) -> Path:
    w = LabelsWriter.create(path, meta(n_frames=2), OBJECTS, [0, 1], np.stack([np.eye(4)] * 2), [])
    recs = []
    for k in range(2):
        r = record(k, k, score=(0.9, 0.95), score_fract=(0.8, 0.8))
        r.arrays["colour_state"][:] = colour_state
        r.arrays["colour_score"][:] = colour_score
        r.arrays["colour_turned_score"][:] = (0.1, 0.7)
        recs.append(r)
    w.write(recs)
    w.finish(0.6, 0.2)
    w.close()
    return path


def test_labels_store_colour_and_flag_suspected_flips(tmp_path):
    path = _write_labels(tmp_path / "labels.h5")
    with Labels.open(path) as L:
        f = L.frame(1)
        a, b = f.objects
        assert a.colour_state_name == "ok" and not a.flagged
        assert b.colour_state_name == "flip suspected" and b.flagged  # depth 0.95, colour flags
        assert b.colour_score == pytest.approx(0.05) and b.colour_turned_score == pytest.approx(0.7)


def test_flag_rule_with_colour_states():
    score = np.array([0.9, 0.3, 0.9, np.nan])
    fract = np.array([0.8, 0.8, 0.8, 0.8])
    states = np.array([COLOUR_FLAGGED, COLOUR_OK, COLOUR_UNDECIDABLE, COLOUR_FLAGGED], np.uint8)
    assert flag_rule(score, fract, 0.6, 0.2, states).tolist() == [True, True, False, True]
    assert flag_rule(score, fract, 0.6, 0.2).tolist() == [False, True, False, False]


def test_version_3_files_read_with_colour_not_computed(tmp_path):
    path = _write_labels(tmp_path / "labels.h5")
    with h5py.File(path, "r+") as f:
        for name in ("colour_score", "colour_turned_score", "colour_state"):
            del f["frames"][name]
        f.attrs["version"] = 3
    with Labels.open(path) as L:
        o = L.frame(0).objects[0]
        assert o.colour_state == COLOUR_NOT_COMPUTED and np.isnan(o.colour_score)
        assert o.colour_state_name == "not computed"


@pytest.mark.parametrize("name, value, message", [
    ("colour_state", 7, r"frames/colour_state: values outside 0\.\.4"),
    ("colour_score", 1.5, r"frames/colour_score: values outside \[-1, 1\] \(NaN: not computed\)"),
    ("colour_turned_score", -np.inf, r"frames/colour_turned_score: values outside \[-1, 1\]"),
])
def test_bad_colour_values_are_refused(tmp_path, name, value, message):
    path = _write_labels(tmp_path / "labels.h5")
    with h5py.File(path, "r+") as f:
        d = f["frames"][name][()]
        d[0, 0] = value
        del f["frames"][name]
        f["frames"].create_dataset(name, data=d)
    with pytest.raises(FormatError, match=message):
        Labels.open(path)


# --- propagate on synthetic scenes with textured (YCB) models ------------------------------

def _needs_ycb():
    if not YCB.is_dir():
        pytest.skip(f"{YCB} not found (../shared/data beside the project)")


@pytest.fixture(scope="module")
def ycb_synth(tmp_path_factory) -> Path:
    """A 6-frame synthetic scene of six YCB objects (their textured meshes: the frames
    are rendered from the same textures the check renders)."""
    _needs_ycb()
    from labeller.synth import SynthConfig
    from labeller.synth import run as synth_run

    out = tmp_path_factory.mktemp("colour_synth") / "scene"
    synth_run(SynthConfig(out, frames=6, seed=3, with_annotations=True, models_dir=YCB))
    return out


def symmetry_turn(turns: tuple[np.ndarray, ...], class_name: str) -> np.ndarray | None:
    """The half turn about the class's symmetry axis (the up axis z for a class without
    one) among the turns the shape allows; None when the shape allows none of them."""
    cls = BY_NAME[class_name]
    axis = np.asarray(cls.symmetry_axis if cls.symmetry_axis is not None else (0.0, 0.0, 1.0))
    for S in turns:
        if np.allclose(S[:3, :3] @ axis, axis):
            return S
    return turns[0] if turns else None


def _propagate(scene: Path, turn: bool) -> Labels:
    """Propagate `scene` (models from YCB), every label first turned by `symmetry_turn`
    when `turn`; the open labels.h5."""
    doc = AnnotationDocument.read(scene / "annotations.json")
    if turn:
        for o in doc.objects:
            p = resolve_model_path(o.model, scene, YCB)
            S = symmetry_turn(cc.model_half_turns(p, BY_NAME[o.class_name].symmetry_axis),
                              o.class_name)
            if S is not None:
                o.T_world_obj = o.T_world_obj @ S
    doc.write(scene / "annotations.json")
    run(PropagateConfig(scene=scene, models_dir=YCB, restart=True, max_overlays=0))
    return Labels.open(scene / "labels" / "labels.h5")


def test_synthetic_flips_are_flagged_and_true_labels_are_not(ycb_synth, tmp_path):
    import shutil

    scene = tmp_path / "scene"
    shutil.copytree(ycb_synth, scene)
    with _propagate(scene, turn=False) as L:
        st_true = L.arrays["colour_state"].copy()
        vis_true = L.arrays["visib_fract"] >= 0.3
        flagged_true = L.arrays["flagged"].copy()
    with _propagate(scene, turn=True) as L:
        st_flip = L.arrays["colour_state"].copy()
        vis_flip = L.arrays["visib_fract"] >= 0.3
        flagged_flip = L.arrays["flagged"].copy()
        classes = [o.class_name for o in L.objects]
    # correct labels: at most 2 % flagged by colour (none expected)
    n_true = int(vis_true.sum())
    false_flags = int((st_true[vis_true] == COLOUR_FLAGGED).sum())
    assert n_true >= 20 and false_flags <= 0.02 * n_true, (false_flags, n_true)
    assert not flagged_true[vis_true].any()
    # turned labels: flagged in >= 95 % of the frames where visible, except where the
    # check reports the texture as symmetric under the turn (undecidable)
    decidable = vis_flip & (st_flip != COLOUR_UNDECIDABLE)
    hits = int((st_flip[decidable] == COLOUR_FLAGGED).sum())
    assert hits >= 0.95 * int(decidable.sum()) and decidable.sum() >= 0.6 * vis_flip.sum(), \
        (hits, int(decidable.sum()), int(vis_flip.sum()), classes)
    assert flagged_flip[decidable & (st_flip == COLOUR_FLAGGED)].all()  # the review flag too


def test_no_colour_check_leaves_states_not_computed(ycb_synth, tmp_path):
    import shutil

    from labeller.cli.main import build_parser

    scene = tmp_path / "scene"
    shutil.copytree(ycb_synth, scene)
    run(PropagateConfig(scene=scene, models_dir=YCB, restart=True, max_overlays=0,
                        colour_check=False))
    with Labels.open(scene / "labels" / "labels.h5") as L:
        assert (L.arrays["colour_state"] == COLOUR_NOT_COMPUTED).all()
        assert np.isnan(L.arrays["colour_score"]).all()
    args = build_parser().parse_args(["propagate", str(scene), "--no-colour-check"])
    assert args.colour_check is False


# --- real PoseCNN frames -------------------------------------------------------------------

def test_real_posecnn_poses_not_flagged_and_turned_ones_are(shared_data, tmp_path):
    """The PoseCNN demo frames (network output, refined against depth): the given poses
    are never colour-flagged; the same poses turned 180 degrees about the symmetry axis
    are flagged wherever the check can decide."""
    from tests.test_propagate import posecnn_scene

    if not POSECNN.is_dir() or not YCB.is_dir():
        pytest.skip(f"{POSECNN} or {YCB} not found")
    given: list[tuple] = []
    turned: list[tuple] = []
    for frame in ("000000", "000001", "000002", "000003"):
        for turn in (False, True):
            root = posecnn_scene(tmp_path / f"{frame}{turn}", frame)
            with _propagate(root, turn) as L:
                for o in L.frame(0).objects:
                    (turned if turn else given).append((frame, o.class_name, o.colour_state_name,
                                                        round(o.colour_score, 2)))
    assert all(s != "flip suspected" for *_, s, _ in given), given
    decided = [x for x in turned if x[2] in ("ok", "flip suspected")]
    assert len(decided) >= 4 and all(x[2] == "flip suspected" for x in decided), turned
    print(json.dumps({"given": given, "turned": turned}))


def test_unreadable_colour_frame_skips_only_its_colour_check(ycb_synth, tmp_path, caplog):
    import shutil

    scene = tmp_path / "scene"
    shutil.copytree(ycb_synth, scene)
    (scene / "rgb" / "000002.png").write_bytes(b"not a png")
    run(PropagateConfig(scene=scene, models_dir=YCB, restart=True, max_overlays=0))
    with Labels.open(scene / "labels" / "labels.h5") as L:
        r = L.row(2)
        assert (L.arrays["colour_state"][r] == COLOUR_NOT_COMPUTED).all()
        assert np.isfinite(L.arrays["score"][r]).any()  # the depth labels are there
        assert (L.arrays["colour_state"][L.row(1)] != COLOUR_NOT_COMPUTED).any()
    assert "frame 2: colour check skipped" in caplog.text and "000002.png" in caplog.text
