"""`run(cfg)`: the init stage. Estimates fused over frames, the rest registered.

Order of work, so that a bad input writes nothing: read and check every estimate
(ids, frames, units) and the models; score and fuse; register; then write
annotations.json and suggestions.json, each atomically.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from labeller.core.errors import FormatError, ModelError, SceneError
from labeller.core.fileio import sha256_file
from labeller.core.poses import transform_points
from labeller.core.progress import ProgressFn, check_progress
from labeller.formats.annotations import AnnotationDocument, ObjectAnnotation
from labeller.formats.bop_results import PoseEstimate
from labeller.formats.models import ObjectModel, find_class_model, list_library_classes, load_model
from labeller.formats.scene import Scene
from labeller.formats.suggestions import Suggestion, SuggestionFile, suggestions_path
from labeller.init_poses.config import InitConfig
from labeller.init_poses.depth_score import EstimateScorer, depth_ratio, score_in_frames
from labeller.init_poses.estimates import read_estimates, read_obj_map, resolve_classes
from labeller.init_poses.fusion import FusionSettings, fuse_class
from labeller.init_poses.report import InitSummary, ObjectRow
from labeller.init_poses.symmetry import class_symmetry

log = logging.getLogger(__name__)

# Units check: estimated z over sensor depth at the projected origin, median over the
# estimates of the first UNIT_CHECK_FRAMES frames. Right units give ~1 (the origin sits
# inside the object, a little behind its visible surface); t written in metres where
# the format says mm gives ~1/1000.
UNIT_CHECK_FRAMES = 20
UNIT_RATIO_MIN, UNIT_RATIO_MAX = 0.2, 5.0
# An estimate the depth says nothing about weighs like one with a middling score.
UNSCORED_DEPTH = 0.5
DEPTH_WEIGHT_FLOOR = 0.1
# A fused object within this many inlier radii of an existing one of its class is that object.
SAME_OBJECT_FACTOR = 2.0
# Two objects whose centres are nearer than this share of the smaller one's diameter overlap.
OVERLAP_FRACTION = 0.5
PLACED_POINTS = 1500


def _evenly(frames: list[int], k: int) -> list[int]:
    if len(frames) <= k:
        return list(frames)
    return [frames[int(i)] for i in np.linspace(0, len(frames) - 1, k).round()]


class _Run:
    """The state of one run (the scene, its poses, the document, what was found)."""

    def __init__(self, cfg: InitConfig, progress: ProgressFn | None):
        self.cfg = cfg
        self.progress = progress
        self.scene = Scene(cfg.scene)
        traj = self.scene.trajectory
        self.poses = {t: traj[t] for t in traj.frame_ids}
        self.tracked = sorted(self.poses)
        self.sha = sha256_file(self.scene.paths.trajectory)
        ann = self.scene.paths.annotations
        if ann.is_file():
            self.doc = AnnotationDocument.read(ann)
            if self.doc.trajectory_sha256 and self.doc.trajectory_sha256 != self.sha:
                raise FormatError(ann, "trajectory_sha256: refers to another trajectory.txt than the "
                                       "scene's; its poses are in another world frame")
        else:
            self.doc = AnnotationDocument()
        self.summary = InitSummary()
        self.suggestions = SuggestionFile(trajectory_sha256=self.sha)
        self.models: dict[str, ObjectModel] = {}
        self.stored: dict[str, str] = {}
        self._depth_cache: dict[int, np.ndarray] = {}

    def depth(self, t: int) -> np.ndarray:
        if t not in self._depth_cache:
            if len(self._depth_cache) > 32:
                self._depth_cache.clear()
            self._depth_cache[t] = self.scene.depth(t)
        return self._depth_cache[t]

    def model(self, name: str) -> ObjectModel:
        if name not in self.models:
            path, stored = find_class_model(name, self.scene.root, self.cfg.models_dir)
            self.models[name] = load_model(path)
            self.stored[name] = stored
        return self.models[name]

    # -- estimates ---------------------------------------------------------------------
    def read_estimates(self) -> tuple[list[PoseEstimate], dict[int, str]]:
        cfg = self.cfg
        assert cfg.estimates is not None
        est = read_estimates(cfg.estimates, cfg.bop_scene_id)
        obj_map = read_obj_map(cfg.obj_map) if cfg.obj_map is not None else None
        cm = resolve_classes(est, obj_map, self.scene.root, cfg.models_dir, cfg.obj_map)
        n = self.scene.n_frames
        for e in est:
            if e.frame_id >= n:
                raise FormatError(e.where, f"frame (im_id) {e.frame_id} is outside the scene "
                                           f"(frames 0..{n - 1})")
        for name, (path, stored) in cm.model_of.items():
            try:
                self.models[name] = load_model(path)
            except ModelError as exc:
                raise ModelError(path, f"model of class {name}: {exc.problem}") from None
            self.stored[name] = stored
        self.summary.skipped = dict(cm.skipped)
        usable = [e for e in est if e.obj_id in cm.class_of]
        self._check_units(usable, Path(cfg.estimates))
        return usable, cm.class_of

    def _check_units(self, est: list[PoseEstimate], path: Path) -> None:
        by_frame: dict[int, list[PoseEstimate]] = defaultdict(list)
        for e in est:
            by_frame[e.frame_id].append(e)
        ratios: list[float] = []
        for t in sorted(by_frame)[:UNIT_CHECK_FRAMES]:
            d = self.depth(t)
            ratios += [depth_ratio(self.scene.camera, e.T_cam_obj, d) for e in by_frame[t]]
        good = [r for r in ratios if np.isfinite(r)]
        if not good:
            return
        r = float(np.median(good))
        first = est[0].where
        def about(x: float) -> str:  # the power of ten a unit mix-up makes
            return f"about {10 ** round(np.log10(x)):g}x ({x:.0f}x)"

        if r < UNIT_RATIO_MIN:
            raise FormatError(first, f"estimates lie {about(1 / r)} nearer than the sensor depth says "
                                     "(t in metres where the format wants millimetres?)")
        if r > UNIT_RATIO_MAX:
            raise FormatError(first, f"estimates lie {about(r)} farther than the sensor depth says "
                                     "(t in the wrong units?)")

    def fuse(self, est: list[PoseEstimate], class_of: dict[int, str]) -> list[tuple[str, np.ndarray, ObjectRow]]:
        cfg = self.cfg
        scorer = EstimateScorer(self.scene.camera, self.models, cfg.depth_delta_m, cfg.occlusion_margin_m)
        by_frame: dict[int, list[PoseEstimate]] = defaultdict(list)
        for e in est:
            by_frame[e.frame_id].append(e)
        lifted: dict[str, list[tuple[int, np.ndarray, float]]] = defaultdict(list)
        frames = sorted(by_frame)
        self.total = len(frames) + self.register_count
        factor = scorer.factor
        for k, t in enumerate(frames):
            if t not in self.poses:
                self.summary.untracked += len(by_frame[t])
            else:
                dist_s = self.depth(t) * factor
                for e in by_frame[t]:
                    name = class_of[e.obj_id]
                    s = scorer.score(name, e.T_cam_obj, dist_s)
                    ds = UNSCORED_DEPTH if not np.isfinite(s) else s
                    w = max(e.score, 1e-3) * (DEPTH_WEIGHT_FLOOR + ds)
                    lifted[name].append((t, self.poses[t] @ e.T_cam_obj, w))
            check_progress(self.progress, k + 1, self.total)
        settings = FusionSettings(cfg.inlier_m, cfg.inlier_deg, cfg.min_frames, cfg.min_fraction,
                                  cfg.max_instances)
        out: list[tuple[str, np.ndarray, ObjectRow]] = []
        for name in sorted(lifted):
            fr = np.array([t for t, _, _ in lifted[name]])
            T = np.stack([T for _, T, _ in lifted[name]])
            weights = np.array([w for _, _, w in lifted[name]])
            inst = fuse_class(T, fr, weights, class_symmetry(name), settings)
            used = sum(len(i.inliers) for i in inst)
            if not inst:
                self.summary.not_found.append(
                    (name, f"{len(fr)} estimate(s) in {len(set(fr.tolist()))} frame(s), none agreeing "
                           f"in enough frames (--min-frames {cfg.min_frames})"))
            for i in inst:
                row = ObjectRow(name, "estimates", len(i.inliers), len(fr) - used, 1000 * i.spread_m,
                                i.spread_deg, float("nan"), "")
                out.append((name, i.T_world_obj, row))
        return out

    # -- registration ----------------------------------------------------------------
    def register_classes(self, placed_names: set[str] | None = None) -> list[str]:
        """What --register looks for: --classes, or every class with a model in the scene
        (else in the library) that nothing placed has yet."""
        cfg = self.cfg
        if not cfg.register:
            return []
        if cfg.classes:
            return list(cfg.classes)
        names: set[str] = set()
        if self.scene.paths.models.is_dir():
            names |= set(list_library_classes(self.scene.paths.models))
        if cfg.models_dir is not None and not names:
            names |= set(list_library_classes(cfg.models_dir))
        placed = {o.class_name for o in self.doc.objects} | (placed_names or set())
        return sorted(names - placed)

    def register(self, placed: list[tuple[str, np.ndarray]]) -> list[tuple[str, np.ndarray, ObjectRow]]:
        from labeller.init_poses.registration import register_models

        cfg = self.cfg
        names = self.register_classes({c for c, _ in placed})
        if not names:
            return []
        cloud_path = self.scene.paths.cloud
        if not cloud_path.is_file():
            raise SceneError(cloud_path, "missing: run `labeller track` first (it fuses the cloud "
                                         "that --register matches the models against)")
        import open3d as o3d

        pcd = o3d.io.read_point_cloud(cloud_path)
        cloud = np.asarray(pcd.points)
        colors = np.asarray(pcd.colors) if pcd.has_colors() else None
        if len(cloud) == 0:
            raise SceneError(cloud_path, "holds no points")
        models = [(n, self.model(n)) for n in names]
        placed_pts = [transform_points(T, self.model(c).sample_points(PLACED_POINTS)) for c, T in placed]
        done0 = self.total - self.register_count

        def sub(done: int, total: int) -> bool | None:
            return None if self.progress is None else self.progress(done0 + done, self.total)

        hyps = register_models(cloud, models, cfg.voxel_m, placed_pts, cfg.seed, sub, colors)
        cand = [(i, h) for i, h in enumerate(hyps) if h is not None]
        objs = [(k + 1, self.model(c), T) for k, (c, T) in enumerate(placed)]
        base = len(objs)
        objs += [(base + 1 + k, models[i][1], h.T_world_obj) for k, (i, h) in enumerate(cand)]
        scores = score_in_frames(self.scene.camera, objs, self.poses, self.depth,
                                 _evenly(self.tracked, cfg.score_frames), cfg.depth_delta_m,
                                 cfg.occlusion_margin_m)
        out = []
        for i, name in enumerate(names):
            h = hyps[i]
            if h is None:
                self.summary.not_found.append((name, "no cluster of the cloud matched the model"))
                continue
            k = [j for j, _ in cand].index(i)
            s = scores.get(base + 1 + k, float("nan"))
            diam = models[i][1].diameter_m
            clash = [c for c, T in placed
                     if np.linalg.norm(T[:3, 3] - h.T_world_obj[:3, 3])
                     < OVERLAP_FRACTION * min(diam, self.model(c).diameter_m)]
            if clash:
                why = f"overlaps the {clash[0]} already placed"
            elif h.score < cfg.min_fitness ** 2:
                why = (f"best match fits poorly (fitness {h.fitness_model:.2f} model, "
                       f"{h.fitness_cluster:.2f} cluster, colour {h.colour:.2f})")
            elif not np.isfinite(s) or s < cfg.min_depth_score:
                why = f"best match disagrees with the depth (score {s:.2f} < {cfg.min_depth_score})"
            else:
                action = "suggested" + (" (check orientation: a half turn fits as well)"
                                        if h.flip_ambiguous else "")
                row = ObjectRow(name, "register", 0, 0, float("nan"), float("nan"), s, action,
                                fitness=h.score, note="orientation ambiguous" if h.flip_ambiguous else None)
                out.append((name, h.T_world_obj, row))
                continue
            self.summary.not_found.append((name, why))
        return out

    @property
    def register_count(self) -> int:
        return len(self.register_classes())

    # -- writing -----------------------------------------------------------------------
    def place(self, fused: list[tuple[str, np.ndarray, ObjectRow]]) -> bool:
        """Put fused estimates into the document (or suggestions); True if it changed."""
        cfg = self.cfg
        changed = False
        taken: set[int] = set()
        for name, T, row in fused:
            sug = Suggestion(name, self.stored[name], T, "estimates", frames_used=row.frames_used,
                             frames_rejected=row.frames_rejected, spread_mm=row.spread_mm,
                             spread_deg=row.spread_deg, depth_score=row.depth_score)
            if cfg.as_suggestions:
                row.action = "suggested"
                self.suggestions.suggestions.append(sug)
                continue
            same = [o for o in self.doc.objects if o.class_name == name and o.id not in taken
                    and np.linalg.norm(o.T_world_obj[:3, 3] - T[:3, 3]) < SAME_OBJECT_FACTOR * cfg.inlier_m]
            if same and not cfg.replace:
                row.action, row.object_id = "kept existing", same[0].id
                taken.add(same[0].id)
                sug.status, sug.object_id = "rejected", same[0].id
            elif same:
                same[0].T_world_obj = np.array(T)
                row.action, row.object_id = "replaced", same[0].id
                taken.add(same[0].id)
                sug.status, sug.object_id = "placed", same[0].id
                changed = True
            else:
                if name not in self.doc.classes:
                    self.doc.classes.append(name)
                oid = self.doc.next_id()
                self.doc.objects.append(ObjectAnnotation(oid, name, self.stored[name], np.array(T)))
                taken.add(oid)
                row.action, row.object_id = "added", oid
                sug.status, sug.object_id = "placed", oid
                changed = True
            self.suggestions.suggestions.append(sug)
        return changed


def run(cfg: InitConfig, progress: ProgressFn | None = None) -> InitSummary:
    """Fuse `cfg.estimates` and/or register models; write annotations.json and
    suggestions.json (atomically). Raises BadInput subclasses for bad input (nothing is
    written then) and Cancelled when `progress` returns False."""
    t0 = time.perf_counter()
    cfg.check()
    r = _Run(cfg, progress)
    r.total = r.register_count
    fused: list[tuple[str, np.ndarray, ObjectRow]] = []
    if cfg.estimates is not None:
        est, class_of = r.read_estimates()
        r.summary.n_estimates = len(est)
        fused = r.fuse(est, class_of)
    placed = [(o.class_name, np.asarray(o.T_world_obj)) for o in r.doc.objects]
    existing = {(c, tuple(T[:3, 3])) for c, T in placed}
    placed += [(c, T) for c, T, _ in fused if (c, tuple(T[:3, 3])) not in existing]
    registered = r.register(placed)
    # The fused poses' own depth check, all objects together (they hide each other).
    objs = [(k + 1, r.model(c), T) for k, (c, T, _) in enumerate(fused)]
    if objs:
        scores = score_in_frames(r.scene.camera, objs, r.poses, r.depth, _evenly(r.tracked, cfg.score_frames),
                                 cfg.depth_delta_m, cfg.occlusion_margin_m)
        for k, (_, _, row) in enumerate(fused):
            row.depth_score = scores[k + 1]
    changed = r.place(fused)
    for name, T, row in registered:
        r.suggestions.suggestions.append(Suggestion(name, r.stored[name], T, "register",
                                                    depth_score=row.depth_score, fitness=row.fitness,
                                                    note=row.note))
    r.suggestions.not_found = list(r.summary.not_found)
    r.summary.rows = [row for _, _, row in fused] + [row for _, _, row in registered]
    if changed:
        r.doc.trajectory_sha256 = r.sha
        r.doc.write(r.scene.paths.annotations)
        r.summary.written.append(str(r.scene.paths.annotations))
    sp = suggestions_path(r.scene.root)
    r.suggestions.write(sp)
    r.summary.written.append(str(sp))
    r.summary.seconds = time.perf_counter() - t0
    log.debug("init: %d objects in %.1f s", len(r.summary.rows), r.summary.seconds)
    return r.summary
