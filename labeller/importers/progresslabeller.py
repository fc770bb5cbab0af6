"""Import a ProgressLabeller project (`labeller import progresslabeller SRC SCENE`).

SRC is a ProgressLabeller workspace:

- a configuration JSON at the top (``configuration.json``, or the only ``*.json`` there)
  with ``camera.intrinsic`` (3x3), ``camera.resolution`` ([width, height]),
  ``camera.inverse_pose``, ``data.depth_scale`` (metres per depth unit),
  ``reconstruction.scale`` and ``reconstruction.recon_trans`` (4x4, as ProgressLabeller
  writes it: ``"a,b,c,d;e,f,g,h;...;"``, or a nested list);
- ``data/rgb/NAME`` and ``data/depth/NAME`` (same names; frames in name order);
- ``recon/campose.txt``: ``IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME`` (COLMAP images.txt
  order) → ``trajectory.txt``;
- ``recon/label_pose.yaml`` (or ``label_pose.yaml`` at the top):
  ``<class>.instance001: {pose: [[x, y, z], [qw, qx, qy, qz]], type: ...}`` → ``annotations.json``.

Pose conventions, read from ProgressLabeller's own offline loader (offline/main.py,
``applytrans2cam``): a campose line gives P = [R(q) | t]; its translation is multiplied by
``reconstruction.scale``; if ``camera.inverse_pose`` is true (COLMAP's world-to-camera
poses, the default here when the key is absent) P is inverted; then
``T_world_cam = recon_trans @ P``. Object poses in ``label_pose.yaml`` are already in that
(metric, aligned) world: ``T_world_obj``. Both are re-anchored to the first posed frame.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from labeller.core.camera import CameraIntrinsics
from labeller.core.classes import BY_NAME, PROPS_CLASS_NAMES
from labeller.core.errors import BadInput, FormatError
from labeller.core.fileio import read_json_object, sha256_file
from labeller.core.poses import inv_pose, quat_wxyz_to_matrix, rigid_or_none
from labeller.core.progress import ProgressFn, bar, check_progress
from labeller.formats.annotations import AnnotationDocument, ObjectAnnotation
from labeller.formats.external_trajectory import read_campose
from labeller.formats.models import MESH_SUFFIXES
from labeller.formats.sanity import model_extent, model_size_warning
from labeller.formats.trajectory import QUAT_NORM_TOL, Trajectory
from labeller.importers.writer import ImportResult, scene_writer

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def find_config(src: Path) -> Path:
    p = src / "configuration.json"
    if p.is_file():
        return p
    found = sorted(src.glob("*.json"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise BadInput(src, "no configuration JSON (a ProgressLabeller project has "
                            "configuration.json, data/rgb, data/depth, recon/campose.txt)")
    raise BadInput(src, f"several JSON files ({', '.join(f.name for f in found)}); expected "
                        "configuration.json")


def _get(cfg: dict, dotted: str, where: Path):
    cur = cfg
    for k in dotted.split("."):
        if not isinstance(cur, dict) or k not in cur:
            raise FormatError(where, f"no '{dotted}'")
        cur = cur[k]
    return cur


def parse_recon_trans(v, where: Path) -> np.ndarray:
    """4x4 from ProgressLabeller's 'a,b,c,d;...;' string (or a nested list)."""
    try:
        if isinstance(v, str):
            rows = [r for r in v.strip().split(";") if r.strip()]
            M = np.array([[float(x) for x in r.split(",")] for r in rows], dtype=np.float64)
        else:
            M = np.asarray(v, dtype=np.float64)
    except (ValueError, TypeError):
        raise FormatError(where, "'reconstruction.recon_trans' is not a 4x4 matrix of numbers"
                          ) from None
    if M.shape != (4, 4):
        raise FormatError(where, f"'reconstruction.recon_trans' must be 4x4, got {M.shape}")
    T, problem = rigid_or_none(M)
    if T is None:
        raise FormatError(where, f"'reconstruction.recon_trans': {problem}")
    return T


def _load_yaml(path: Path):
    text = path.read_text(errors="replace")
    try:
        import yaml  # type: ignore[import-untyped]  # PyYAML when present (no stubs here)

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise FormatError(path, f"not valid YAML ({str(exc).splitlines()[0]})") from None
    except ImportError:
        pass
    try:
        from ruamel.yaml import YAML  # installed with rosbags
        from ruamel.yaml.error import YAMLError
    except ImportError:
        raise BadInput(path, "reading YAML needs PyYAML or ruamel.yaml "
                             "(pip install pyyaml)") from None
    try:
        return YAML(typ="safe", pure=True).load(text)
    except YAMLError as exc:
        raise FormatError(path, f"not valid YAML ({str(exc).splitlines()[0]})") from None


def read_label_poses(path: Path) -> list[tuple[str, str, np.ndarray]]:
    """(instance name, class, T_world_obj) per entry of label_pose.yaml, in file order."""
    d = _load_yaml(path)
    if d is None:
        return []
    if not isinstance(d, dict):
        raise FormatError(path, "expected a mapping 'class.instanceNNN: {pose: ...}'")
    out = []
    for inst, entry in d.items():
        where = f"{path}: {inst}"
        pose: Any = entry.get("pose") if isinstance(entry, dict) else None
        try:
            t = np.asarray(pose[0], dtype=np.float64).reshape(3)
            q = np.asarray(pose[1], dtype=np.float64).reshape(4)
        except (TypeError, ValueError, IndexError, KeyError):
            raise FormatError(where, "expected 'pose: [[x, y, z], [qw, qx, qy, qz]]'") from None
        qn = float(np.linalg.norm(q))
        if not (np.all(np.isfinite(t)) and np.isfinite(qn)) or abs(qn - 1.0) > QUAT_NORM_TOL:
            raise FormatError(where, f"bad pose (quaternion norm {qn:.4f}, expected 1)")
        T = np.eye(4)
        T[:3, :3] = quat_wxyz_to_matrix(q / qn)
        T[:3, 3] = t
        out.append((str(inst), str(inst).split(".")[0], T))
    return out


def _frame_files(d: Path) -> dict[str, Path]:
    if not d.is_dir():
        return {}
    return {f.name: f for f in d.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES}


def _model_dir(src: Path, cfg: dict) -> Path | None:
    env = cfg.get("environment")
    if not isinstance(env, dict):
        env = {}
    cands = []
    if isinstance(env.get("modelsrc"), str):
        p = Path(env["modelsrc"])
        cands.append(p if p.is_absolute() else src / p)
    cands += [src / "model", src / "models"]
    return next((c for c in cands if c.is_dir()), None)


def import_progresslabeller(src: str | Path, dest: str | Path, *, link: bool = False,
                            overwrite: bool = False,
                            progress: ProgressFn | None = None
                            ) -> ImportResult:
    """Convert a ProgressLabeller project into a scene at `dest` (see the module doc)."""
    src, dest = Path(src), Path(dest)
    if not src.is_dir():
        raise BadInput(src, "not a directory (expected a ProgressLabeller project folder)")
    cfg_path = find_config(src)
    cfg = read_json_object(cfg_path)
    try:
        K = np.asarray(_get(cfg, "camera.intrinsic", cfg_path), dtype=np.float64).reshape(3, 3)
        res = [int(v) for v in _get(cfg, "camera.resolution", cfg_path)]
        depth_m_per_unit = float(_get(cfg, "data.depth_scale", cfg_path))
        scale = float(_get(cfg, "reconstruction.scale", cfg_path))
    except (ValueError, TypeError):
        raise FormatError(cfg_path, "camera.intrinsic must be 3x3 numbers, camera.resolution "
                                    "[width, height], data.depth_scale and "
                                    "reconstruction.scale numbers") from None
    if not (depth_m_per_unit > 0 and scale > 0 and len(res) == 2):
        raise FormatError(cfg_path, "data.depth_scale and reconstruction.scale must be > 0 and "
                                    "camera.resolution [width, height]")
    recon_trans = parse_recon_trans(_get(cfg, "reconstruction.recon_trans", cfg_path), cfg_path)
    inverse = bool(cfg.get("camera", {}).get("inverse_pose", True))

    rgb = _frame_files(src / "data/rgb")
    if not rgb:
        raise BadInput(src / "data/rgb", "no colour images (.png/.jpg)")
    depth = _frame_files(src / "data/depth")
    names = sorted(rgb)
    for n in names:
        if n not in depth:
            raise BadInput(src / "data/depth" / n, f"missing depth image for data/rgb/{n}")
    warnings: list[str] = []

    campose_path = src / "recon/campose.txt"
    if not campose_path.is_file():
        raise BadInput(campose_path, "missing (the project has no reconstruction yet?)")
    index = {n: t for t, n in enumerate(names)}
    poses: dict[int, np.ndarray] = {}
    unknown = []
    for name, P in read_campose(campose_path).items():
        t = index.get(Path(name).name)
        if t is None:
            unknown.append(name)
            continue
        P = P.copy()
        P[:3, 3] *= scale  # the reconstruction's units -> metres
        poses[t] = recon_trans @ (inv_pose(P) if inverse else P)
    if unknown:
        warnings.append(f"{campose_path}: {len(unknown)} poses name images not in data/rgb "
                        f"(e.g. {unknown[0]}); ignored")
    if not poses:
        raise BadInput(campose_path, "names none of the images in data/rgb")
    if len(poses) < len(names):
        warnings.append(f"{campose_path}: {len(names) - len(poses)} of {len(names)} frames have "
                        "no pose; they stay untracked")
    first = min(poses)
    T_anchor = inv_pose(poses[first])  # re-anchor: the first posed frame is the world
    traj = Trajectory({t: T_anchor @ T for t, T in poses.items()})

    labels_path = next((p for p in (src / "recon/label_pose.yaml", src / "label_pose.yaml")
                        if p.is_file()), None)
    labels = read_label_poses(labels_path) if labels_path else []
    model_src = _model_dir(src, cfg)

    with scene_writer(dest, overwrite=overwrite, link=link) as w:
        with bar(len(names), "import progresslabeller") as frames_bar:
            for t, n in enumerate(names):
                wh = w.check_frame(rgb[n], depth[n])
                if t == 0:
                    if tuple(res) not in (wh, wh[::-1]):  # [width, height]; some write [h, w]
                        raise FormatError(cfg_path, f"camera.resolution {res} differs from the "
                                                    f"images' {wh[0]}x{wh[1]} (width, height)")
                w.add_rgb(t, rgb[n])
                w.add_depth_file(t, depth[n])
                frames_bar.update(1)
                check_progress(progress, t + 1, len(names),
                               f"{dest}: import cancelled; nothing written")
        size = w.frame_size
        assert size is not None
        w.write_camera(CameraIntrinsics(size[0], size[1], float(K[0, 0]), float(K[1, 1]),
                                        float(K[0, 2]), float(K[1, 2]), 1.0 / depth_m_per_unit))
        traj.write(w.paths.trajectory)
        notes = [f"trajectory.txt: {len(traj)} poses (scale {scale:g}, "
                 f"{'inverted world-to-camera' if inverse else 'camera-to-world'} campose)",
                 f"depth ÷ {1.0 / depth_m_per_unit:g}"]
        if labels and labels_path is not None:
            objs = []
            missing = []
            wrong_units: set[str] = set()
            for k, (_inst, cls, T) in enumerate(labels):
                model = f"{BY_NAME[cls].ycb_folder}/textured.obj" if cls in BY_NAME else \
                    f"models/{cls}.ply"
                mdir = model_src / cls if model_src else None
                meshes = sorted(f for f in mdir.iterdir() if f.suffix.lower() in MESH_SUFFIXES) \
                    if mdir and mdir.is_dir() else []
                extent = model_extent(meshes[0]) if meshes else None
                size_warning = (model_size_warning(meshes[0], cls, extent)
                                if meshes and extent is not None else None)
                if size_warning is not None:
                    # A model ~1000x off (mm) cannot go into annotations.json (the scene
                    # check refuses it); keep the objects as ground truth and say why.
                    if cls not in wrong_units:
                        warnings.append(size_warning)
                        wrong_units.add(cls)
                    missing.append(cls)
                elif mdir is not None and meshes:
                    out_dir = w.paths.models / cls
                    if not out_dir.exists():
                        shutil.copytree(mdir, out_dir)
                    model = f"models/{cls}/{meshes[0].name}"
                else:
                    missing.append(cls)
                objs.append(ObjectAnnotation(k + 1, cls, model, T_anchor @ T))
            cls_used = [o.class_name for o in objs]
            classes = (list(PROPS_CLASS_NAMES) if all(c in PROPS_CLASS_NAMES for c in cls_used)
                       else list(dict.fromkeys(cls_used)))
            doc = AnnotationDocument(objs, classes, sha256_file(w.paths.trajectory))
            if not missing:
                doc.write(w.paths.annotations)
                notes.append(f"annotations.json: {len(objs)} objects from {labels_path.name}")
            else:
                # annotations.json must name models that exist (the scene check loads them).
                w.paths.gt.mkdir(parents=True, exist_ok=True)
                doc.write(w.paths.gt_annotations)
                absent = ", ".join(sorted(set(missing) - wrong_units))
                why = (f"no model folder for {absent} in the project" if absent else
                       "models in the wrong units (above)")
                warnings.append(f"{labels_path}: {why}; the {len(objs)} objects went to "
                                "gt/annotations.json only")
        result = ImportResult(dest, len(names), n_linked=w.n_linked, n_copied=w.n_copied,
                              n_rewritten=w.n_rewritten, warnings=warnings + w.warnings,
                              notes=notes)
    return result
