"""Tests of the synthetic scene generator (`labeller synth`, labeller.synth)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from labeller.cli.main import main as cli_main
from labeller.core.camera import CameraIntrinsics
from labeller.core.classes import BY_NAME, PROPS_CLASS_NAMES
from labeller.core.errors import BadInput, Cancelled, ConfigError
from labeller.core.fileio import read_image, sha256_file
from labeller.core.poses import inv_pose, rotation_error_deg, translation_error_m
from labeller.formats.annotations import AnnotationDocument
from labeller.formats.models import load_model, resolve_model_path
from labeller.formats.scene import scene_problems
from labeller.formats.trajectory import Trajectory
from labeller.synth import SynthConfig, SynthWorld, depth_noise_sigma_m, run

YCB = Path(__file__).resolve().parents[2] / "shared" / "data" / "ycb_models"
W, H = 320, 240
N_FRAMES = 12


def _cfg(out: Path, **kw) -> SynthConfig:
    base = dict(out=out, frames=N_FRAMES, seed=3, width=W, height=H)
    base.update(kw)
    return SynthConfig(**base)


@pytest.fixture(scope="session")
def scene(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "s3"
    run(_cfg(out))
    return out


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _mask_pose_agreement(root: Path, models_dir: Path | None = None, frames=None):
    """Per object: (fraction of visible projected model points that land on the object's
    mask, fraction within one pixel of it, median and 95th percentile distance (m) of its
    back-projected mask pixels to the model surface, number of visible points)."""
    import cv2
    import open3d as o3d

    cam = CameraIntrinsics.read(root / "camera.json")
    traj = Trajectory.read(root / "gt" / "trajectory.txt")
    doc = AnnotationDocument.read(root / "gt" / "annotations.json")
    stats = {}
    for o in doc.objects:
        model = load_model(resolve_model_path(o.model, root, models_dir))
        pts = model.sample_points(4000)
        rc = o3d.t.geometry.RaycastingScene()
        rc.add_triangles(o3d.core.Tensor(model.vertices.astype(np.float32)),
                         o3d.core.Tensor(model.triangles.astype(np.uint32)))
        hits, near, n_vis, dists = 0, 0, 0, []
        for t in frames if frames is not None else traj.frame_ids:
            mask = read_image(root / "gt" / "masks" / f"{t:06d}.png")
            depth = read_image(root / "depth" / f"{t:06d}.png").astype(np.float64) / cam.depth_scale
            T_cam_obj = inv_pose(traj[t]) @ o.T_world_obj
            p = pts @ T_cam_obj[:3, :3].T + T_cam_obj[:3, 3]
            uv = np.rint(cam.project(p)).astype(int)
            ok = (p[:, 2] > 0.05) & (uv[:, 0] >= 0) & (uv[:, 0] < cam.width) & (uv[:, 1] >= 0) & (
                uv[:, 1] < cam.height)
            u, v, z = uv[ok, 0], uv[ok, 1], p[ok, 2]
            d = depth[v, u]
            # Visible: the sensor saw this point's depth there (noise is ~2 mm here).
            vis = (d > 0) & (np.abs(d - z) < 0.006)
            n_vis += int(vis.sum())
            hits += int((mask[v[vis], u[vis]] == o.id).sum())
            # Pixel distance to the object's mask (points at a silhouette may round across).
            off = cv2.distanceTransform((mask != o.id).astype(np.uint8), cv2.DIST_L2, 3)
            near += int((off[v[vis], u[vis]] <= 1.01).sum())
            # Mask pixels back-projected with the measured depth lie on the model.
            mv, mu = np.nonzero((mask == o.id) & (depth > 0))
            if len(mu):
                pc = cam.backproject(mu, mv, depth[mv, mu])
                T_obj_cam = inv_pose(T_cam_obj)
                po = (pc @ T_obj_cam[:3, :3].T + T_obj_cam[:3, 3]).astype(np.float32)
                dists.append(rc.compute_distance(o3d.core.Tensor(po)).numpy())
        dd = np.concatenate(dists) if dists else np.array([np.inf])
        stats[o.id] = (hits / max(n_vis, 1), near / max(n_vis, 1), float(np.median(dd)),
                       float(np.percentile(dd, 95)), n_vis)
    return stats


# --- layout ---------------------------------------------------------------------------------

def test_layout_is_a_valid_scene(scene):
    assert scene_problems(scene, deep=True) == []
    assert len(list((scene / "rgb").glob("*.png"))) == N_FRAMES
    assert len(list((scene / "depth").glob("*.png"))) == N_FRAMES
    assert len(list((scene / "gt" / "masks").glob("*.png"))) == N_FRAMES
    cam = CameraIntrinsics.read(scene / "camera.json")
    assert (cam.width, cam.height, cam.depth_scale) == (W, H, 1000.0)
    rgb, depth, mask = (read_image(scene / d / "000005.png") for d in ("rgb", "depth", "gt/masks"))
    assert rgb.dtype == np.uint8 and rgb.shape == (H, W, 3)
    assert depth.dtype == np.uint16 and depth.shape == (H, W)
    assert mask.dtype == np.uint16 and mask.shape == (H, W)
    # Table and walls fill the view: depth almost everywhere, in a plausible range.
    assert (depth > 0).mean() > 0.85
    assert 300 < np.median(depth[depth > 0]) < 2500


def test_top_level_has_no_trajectory_or_annotations_by_default(scene):
    assert not (scene / "trajectory.txt").exists()
    assert not (scene / "annotations.json").exists()
    assert (scene / "gt" / "trajectory.txt").is_file()
    assert (scene / "gt" / "annotations.json").is_file()


def test_gt_annotations_and_models(scene):
    doc = AnnotationDocument.read(scene / "gt" / "annotations.json")
    assert doc.classes == list(PROPS_CLASS_NAMES)
    assert [o.id for o in doc.objects] == list(range(1, 7))
    names = [o.class_name for o in doc.objects]
    assert len(set(names)) == 6  # default: six distinct classes
    assert doc.trajectory_sha256 == sha256_file(scene / "gt" / "trajectory.txt")
    for o in doc.objects:
        assert o.model == f"models/{o.class_name}/{o.class_name}.ply"
        m = load_model(scene / o.model)
        # The procedural stand-in has the YCB-Video size of its class (to the mm).
        np.testing.assert_allclose(m.extent_m, BY_NAME[o.class_name].size_m, atol=1.5e-3)
    # Every instance id shows up in some mask, and nothing else does.
    seen = set()
    for t in range(N_FRAMES):
        seen |= set(np.unique(read_image(scene / "gt" / "masks" / f"{t:06d}.png")).tolist())
    assert seen <= {0, 1, 2, 3, 4, 5, 6} and {1, 2, 3, 4, 5, 6} & seen


def test_world_is_first_camera_and_motion_is_trackable(scene):
    traj = Trajectory.read(scene / "gt" / "trajectory.txt", N_FRAMES)
    assert traj.frame_ids == list(range(N_FRAMES))
    np.testing.assert_allclose(traj[0], np.eye(4), atol=1e-9)
    for t in range(1, N_FRAMES):
        assert translation_error_m(traj[t - 1], traj[t]) < 0.012
        assert rotation_error_deg(traj[t - 1], traj[t]) < 1.5
    # It does move.
    assert translation_error_m(traj[0], traj[N_FRAMES - 1]) > 0.005


def test_objects_do_not_intersect(tmp_path):
    # Two mugs and big boxes: a crowded table; repeats are allowed.
    out = tmp_path / "crowd"
    names = ["mug", "mug", "cracker_box", "master_chef_can", "mustard_bottle", "sugar_box",
             "large_marker", "potted_meat_can"]
    res = run(_cfg(out, frames=1, classes=names))
    assert [o.class_name for o in res.objects] == names
    import open3d as o3d

    posed = []
    for o in res.objects:
        m = load_model(out / o.model)
        v = m.vertices @ o.T_world_obj[:3, :3].T + o.T_world_obj[:3, 3]
        posed.append((v, m.triangles, m.sample_points(3000) @ o.T_world_obj[:3, :3].T
                      + o.T_world_obj[:3, 3]))
    for i in range(len(posed)):
        for j in range(len(posed)):
            if i == j:
                continue
            rc = o3d.t.geometry.RaycastingScene()
            rc.add_triangles(o3d.core.Tensor(posed[j][0].astype(np.float32)),
                             o3d.core.Tensor(posed[j][1].astype(np.uint32)))
            d = rc.compute_distance(o3d.core.Tensor(posed[i][2].astype(np.float32))).numpy()
            assert d.min() > 0.004, (names[i], names[j], d.min())


# --- ground truth consistency ----------------------------------------------------------------

def test_masks_agree_with_poses_projected_through_intrinsics(scene):
    stats = _mask_pose_agreement(scene)
    assert len(stats) == 6
    for obj_id, (frac, near, med, p95, n_vis) in stats.items():
        if n_vis < 50:  # hidden behind another object in every frame: nothing to check
            continue
        assert frac > 0.9, (obj_id, frac)
        assert near == 1.0, (obj_id, near)
        assert med < 0.004, (obj_id, med)
        assert p95 < 0.012, (obj_id, p95)


def test_mask_check_catches_a_wrong_pose(scene, tmp_path):
    # The agreement check above must be able to fail: shift one object by 2 cm.
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(scene, bad)
    doc = AnnotationDocument.read(bad / "gt" / "annotations.json")
    big = max(doc.objects, key=lambda o: load_model(bad / o.model).extent_m.prod())
    big.T_world_obj[:3, 3] += [0.02, 0.0, 0.0]
    doc.write(bad / "gt" / "annotations.json")
    frac, near, med, _, _ = _mask_pose_agreement(bad)[big.id]
    assert near < 0.95 and med > 0.006


def test_depth_noise_statistics(scene):
    world = SynthWorld(_cfg(scene))
    cam = CameraIntrinsics.read(scene / "camera.json")
    r_all, holes_edge, holes_flat, n_edge, n_flat = [], 0, 0, 0, 0
    for t in (0, 6, 11):
        clean = world.render(t, noisy=False)
        z = clean.depth_clean_m.astype(np.float64)
        png = read_image(scene / "depth" / f"{t:06d}.png")
        # The world renders exactly what was written.
        np.testing.assert_array_equal(world.render(t).depth_png, png)
        np.testing.assert_array_equal(clean.inst, read_image(scene / "gt" / "masks" / f"{t:06d}.png"))
        meas = png.astype(np.float64) / cam.depth_scale
        ok = (meas > 0) & (z > 0)
        r_all.append((meas[ok] - z[ok]) / depth_noise_sigma_m(z[ok]))
        # Depth edges: a 3x3 neighbourhood spanning more than 5 cm.
        import cv2

        zf = np.where(z > 0, z, 10).astype(np.float32)
        span = cv2.dilate(zf, np.ones((3, 3))) - cv2.erode(zf, np.ones((3, 3)))
        edge = (span > 0.05) & (z > 0)
        flat = (span < 0.01) & (z > 0)
        holes_edge += int((edge & (png == 0)).sum())
        n_edge += int(edge.sum())
        holes_flat += int((flat & (png == 0)).sum())
        n_flat += int(flat.sum())
    r = np.concatenate(r_all)
    # Unbiased, noise as modelled (mm quantisation adds a little), no outliers.
    assert abs(np.mean(r)) < 0.05
    assert 0.9 < np.std(r) < 1.15
    assert np.abs(r).max() < 8
    # Holes: most at depth edges, few (dropouts) elsewhere.
    assert holes_edge / n_edge > 0.4
    assert 0.0005 < holes_flat / n_flat < 0.03


def test_rgb_is_textured_and_objects_differ(scene):
    rgb = read_image(scene / "rgb" / "000000.png").astype(np.float64)
    mask = read_image(scene / "gt" / "masks" / "000000.png")
    gray = rgb.mean(2)
    # Strong texture on the background too (gradients everywhere, not flat colour).
    gy, gx = np.gradient(gray)
    g = np.hypot(gx, gy)
    assert np.median(g[mask == 0]) > 2.0
    assert (g[mask == 0] > 20).mean() > 0.02
    means = [rgb[mask == i].mean(0) for i in np.unique(mask) if i and (mask == i).sum() > 100]
    assert len(means) >= 2


# --- determinism ----------------------------------------------------------------------------

def test_same_seed_same_bytes(scene, tmp_path):
    again = tmp_path / "again"
    run(_cfg(again))
    assert _tree_digest(again) == _tree_digest(scene)


def test_other_seed_other_scene(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    run(_cfg(a, frames=1, seed=10))
    run(_cfg(b, frames=1, seed=11))
    assert read_image(a / "rgb" / "000000.png").tobytes() != read_image(b / "rgb" / "000000.png").tobytes()


def test_same_class_looks_the_same_across_scenes(tmp_path):
    from labeller.synth.procedural import class_mesh, class_texture

    a = class_texture("mug")
    assert np.array_equal(a, class_texture("mug"))
    assert not np.array_equal(a, class_texture("sugar_box"))
    assert np.array_equal(class_mesh("mug").vertices, class_mesh("mug").vertices)


# --- with annotations -----------------------------------------------------------------------

@pytest.mark.parametrize("noise", [(0.0, 0.0), (0.02, 5.0)])
def test_with_annotations(tmp_path, noise):
    out = tmp_path / "ann"
    run(_cfg(out, frames=3, with_annotations=True, annotation_noise=noise))
    assert scene_problems(out) == []
    assert (out / "trajectory.txt").read_bytes() == (out / "gt" / "trajectory.txt").read_bytes()
    top = AnnotationDocument.read(out / "annotations.json")
    gt = AnnotationDocument.read(out / "gt" / "annotations.json")
    assert top.trajectory_sha256 == sha256_file(out / "trajectory.txt")
    assert [o.id for o in top.objects] == [o.id for o in gt.objects]
    for a, b in zip(top.objects, gt.objects, strict=True):
        assert (a.class_name, a.model) == (b.class_name, b.model)
        assert translation_error_m(a.T_world_obj, b.T_world_obj) == pytest.approx(noise[0], abs=1e-9)
        assert rotation_error_deg(a.T_world_obj, b.T_world_obj) == pytest.approx(noise[1], abs=1e-5)


def test_cli_with_annotations_and_noise(tmp_path, capsys):
    out = tmp_path / "cli"
    rc = cli_main(["synth", str(out), "--frames", "2", "--seed", "1", "--width", "160", "--height",
                   "120", "--with-annotations", "--annotation-noise", "0.01", "3"])
    assert rc == 0
    assert "perturbed" in capsys.readouterr().out
    top = AnnotationDocument.read(out / "annotations.json")
    gt = AnnotationDocument.read(out / "gt" / "annotations.json")
    for a, b in zip(top.objects, gt.objects, strict=True):
        assert translation_error_m(a.T_world_obj, b.T_world_obj) == pytest.approx(0.01, abs=1e-9)
        assert rotation_error_deg(a.T_world_obj, b.T_world_obj) == pytest.approx(3.0, abs=1e-5)


# --- refusing and bad input -----------------------------------------------------------------

def test_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "exists"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(BadInput, match="already exists"):
        run(_cfg(out, frames=1))
    rc = cli_main(["synth", str(out), "--frames", "1", "--width", "64", "--height", "48"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err == f"labeller synth: error: {out}: already exists (pass --overwrite to replace it)"
    assert (out / "keep.txt").read_text() == "mine"
    # --overwrite replaces only a scene synth wrote, never a folder of the user's
    rc = cli_main(["synth", str(out), "--frames", "1", "--width", "64", "--height", "48", "--overwrite"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err == (f"labeller synth: error: {out}: exists and is not a scene labeller synth wrote "
                   "(camera.json and gt/annotations.json); refusing to replace it even with --overwrite")
    assert (out / "keep.txt").read_text() == "mine"
    (out / "keep.txt").unlink()  # an empty folder may be replaced
    rc = cli_main(["synth", str(out), "--frames", "1", "--width", "64", "--height", "48", "--overwrite"])
    assert rc == 0
    assert scene_problems(out) == []
    rc = cli_main(["synth", str(out), "--frames", "1", "--width", "64", "--height", "48", "--overwrite"])
    assert rc == 0 and scene_problems(out) == []


def _lib_with_only_mug(tmp_path: Path) -> Path:
    from labeller.synth.procedural import write_class_model

    lib = tmp_path / "lib"
    write_class_model("mug", lib / "mug" / "mug.ply")
    return lib


@pytest.mark.parametrize("args, message", [
    (["--classes", "mug", "spoon"], "--classes: unknown class 'spoon'"),
    (["--frames", "0"], "--frames: must be an integer from 1 to"),
    (["--frames", "-4"], "--frames: must be an integer from 1 to"),
    (["--annotation-noise", "0.01", "2"], "--annotation-noise: needs --with-annotations"),
    (["--with-annotations", "--annotation-noise", "-0.01", "2"], "--annotation-noise: metres and degrees"),
    (["--width", "8"], "--width: must be an integer from 16"),
    (["--models", "{missing}"], "models library not found"),
    (["--models", "{lib}", "--classes", "mug", "cracker_box"], "no model for class 'cracker_box'"),
])
def test_bad_input_one_line_exit_2(tmp_path, capsys, args, message):
    lib = _lib_with_only_mug(tmp_path)
    args = [a.format(missing=tmp_path / "nope", lib=lib) for a in args]
    out = tmp_path / "out"
    rc = cli_main(["synth", str(out), "--frames", "1", "--width", "64", "--height", "48", *args]
                  if "--frames" not in args and "--width" not in args
                  else ["synth", str(out), *args])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("labeller synth: error: ") and message in err
    assert err.count("\n") == 1
    assert not out.exists()


def test_config_check_names_the_field(tmp_path):
    # From Python the message names the config field; the CLI shows its flag (above).
    with pytest.raises(ConfigError) as e:
        run(_cfg(tmp_path / "o", frames=0))
    assert e.value.field == "frames"
    assert str(e.value) == "SynthConfig.frames: must be an integer from 1 to 100000, got 0"
    with pytest.raises(ConfigError, match="SynthConfig.classes: unknown class 'spoon'"):
        _cfg(tmp_path / "o", classes=["mug", "spoon"]).check()
    assert not (tmp_path / "o").exists()


def test_library_without_class_names_the_dir(tmp_path):
    lib = _lib_with_only_mug(tmp_path)
    with pytest.raises(BadInput) as e:
        run(_cfg(tmp_path / "o", frames=1, models_dir=lib, classes=["sugar_box"]))
    assert str(lib) in str(e.value) and "sugar_box" in str(e.value)


def test_library_classes_default_to_what_it_has(tmp_path):
    lib = _lib_with_only_mug(tmp_path)
    res = run(_cfg(tmp_path / "o", frames=1, models_dir=lib))
    assert [(o.class_name, o.model) for o in res.objects] == [("mug", "mug/mug.ply")]
    assert not (tmp_path / "o" / "models").exists()


def test_cancel_leaves_nothing(tmp_path):
    out = tmp_path / "c"
    with pytest.raises(Cancelled):
        run(_cfg(out, frames=30), progress=lambda done, total: done < 3)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_help_has_an_example(capsys):
    with pytest.raises(SystemExit) as e:
        cli_main(["synth", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "labeller synth" in text and "--frames 300 --seed 1" in text


# --- library meshes -------------------------------------------------------------------------

@pytest.mark.skipif(not YCB.is_dir(), reason=f"{YCB} not present (shared data)")
def test_with_ycb_library_models(tmp_path):
    out = tmp_path / "ycb"
    names = ["cracker_box", "mug", "tomato_soup_can", "large_marker"]
    res = run(_cfg(out, frames=4, models_dir=YCB, classes=names))
    assert scene_problems(out) == []
    assert not (out / "models").exists()
    doc = AnnotationDocument.read(out / "gt" / "annotations.json")
    assert [o.model for o in doc.objects] == [f"{BY_NAME[n].ycb_folder}/textured.obj" for n in names]
    assert [o.class_name for o in res.objects] == names
    stats = _mask_pose_agreement(out, YCB)
    for obj_id, (frac, near, med, _p95, n_vis) in stats.items():
        if n_vis < 50:
            continue
        assert frac > 0.9 and near > 0.995, (obj_id, frac, near)
        assert med < 0.004, (obj_id, med)
    # The cracker box shows its printed texture, the right way up.
    corr, corr_flipped, n = _texture_correlation(out, doc.objects[0], YCB / doc.objects[0].model)
    assert n > 300
    assert corr > 0.4 and corr > corr_flipped + 0.15, (corr, corr_flipped)


def _texture_correlation(root: Path, obj, obj_path: Path) -> tuple[float, float, int]:
    """Correlation of the rendered brightness of `obj` in frame 0 with its texture looked up
    independently of the generator (OBJ `vt` parsed here, image row = (1 - v) * H), and the
    same with the rows flipped; and the number of pixels compared."""
    import cv2
    import open3d as o3d

    vt, f_uv = [], []
    for line in obj_path.read_text().splitlines():
        if line.startswith("vt "):
            vt.append([float(x) for x in line.split()[1:3]])
        elif line.startswith("f "):
            f_uv.append([int(c.split("/")[1]) - 1 for c in line.split()[1:4]])
    vt_a, f_a = np.array(vt), np.array(f_uv)
    tex = cv2.imread(str(obj_path.parent / "texture_map.png"))[:, :, ::-1]
    tex = cv2.resize(tex, (512, 512), interpolation=cv2.INTER_AREA).astype(np.float64).mean(2)
    m = load_model(obj_path)
    rc = o3d.t.geometry.RaycastingScene()
    rc.add_triangles(o3d.core.Tensor(m.vertices.astype(np.float32)),
                     o3d.core.Tensor(m.triangles.astype(np.uint32)))
    cam = CameraIntrinsics.read(root / "camera.json")
    T_world_cam = Trajectory.read(root / "gt" / "trajectory.txt")[0]
    mask = read_image(root / "gt" / "masks" / "000000.png")
    depth = read_image(root / "depth" / "000000.png") / cam.depth_scale
    gray = read_image(root / "rgb" / "000000.png").astype(np.float64).mean(2)
    v, u = np.nonzero((mask == obj.id) & (depth > 0))
    T_obj_cam = inv_pose(obj.T_world_obj) @ T_world_cam
    p = cam.backproject(u, v, depth[v, u]) @ T_obj_cam[:3, :3].T + T_obj_cam[:3, 3]
    ans = rc.compute_closest_points(o3d.core.Tensor(p.astype(np.float32)))
    c = vt_a[f_a[ans["primitive_ids"].numpy().astype(np.int64)]]
    b = ans["primitive_uvs"].numpy()
    uv = c[:, 0] * (1 - b[:, 0:1] - b[:, 1:2]) + c[:, 1] * b[:, 0:1] + c[:, 2] * b[:, 1:2]
    col = np.clip(uv[:, 0] * 512, 0, 511).astype(int)
    out = []
    for row in ((1 - uv[:, 1]) * 512, uv[:, 1] * 512):
        r = np.clip(row, 0, 511).astype(int)
        out.append(float(np.corrcoef(tex[r, col], gray[v, u])[0, 1]))
    return out[0], out[1], len(u)
