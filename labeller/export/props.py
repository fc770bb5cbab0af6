"""PROPS classification crops (`labeller export --format props`), docs/design.md layout:

    OUT/Progress-Objects-Sample/meta.pkl        {"test_split": ["mug_3", ...]}
    OUT/Progress-Objects-Sample/<class>_<k>.pkl {"data": uint8 (n, 32, 32, 3) RGB,
                                                 "labels": [int] * n}
    OUT/crops.h5            every candidate crop and its metadata (chosen or not)
    OUT/contact_sheet.png   random chosen crops, one row per class
    OUT/manifest.json       sources, options, counts, sha256 of every file

A candidate is an object in a labelled frame with visib_fract >= min_visib, a visible
box whose larger side is >= min_size px, and no propagation flag. Its crop is the square
around the visible box with a small margin (padded black outside the image), resized to
32x32 with area interpolation. Scenes are split whole (test = held out); per class and
split the requested number of crops is spread evenly over the split's scenes and, within
a scene, evenly over time, from a seeded offset. One pickle per (class, scene): `<k>`
numbers the scenes holding candidates of that class from 1, in command-line order.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from labeller.core.errors import BadInput
from labeller.core.fileio import atomic_dir
from labeller.export.common import (
    CROP_MARGIN,
    CROP_PAD_RGB,
    CROP_SIZE,
    ExportConfig,
    ExportSummary,
    Progress,
    SceneSource,
    check_out_dir,
    choose_test_scenes,
    class_table,
    crop_resize,
    crop_squares,
    dumps_compat,
    emit_warning,
    finish_permissions,
    open_sources,
    pick_evenly,
    run_tasks,
    spread_quota,
    to_jsonable,
    write_manifest,
)

PROPS_DIR = "Progress-Objects-Sample"
META_NAME = "meta.pkl"
CROPS_NAME = "crops.h5"
SHEET_NAME = "contact_sheet.png"
SPLITS = ("train", "test")
CACHE_NAME = "crops_cache.h5"
CACHE_VERSION = 1
# Crops per worker task: large enough that process overhead vanishes, small enough that
# results in flight stay a few MB.
TASK_CROPS = 512
# Rows of crops copied per HDF5 read/write when assembling the output.
COPY_BLOCK = 8192
SHEET_COLS = 12
SHEET_SCALE = 3
SHEET_LABEL_W = 230


class ShortfallError(BadInput):
    """Too few candidate crops for the requested counts; `table` lists them."""

    def __init__(self, rows: list[tuple[str, str, int, int]]):
        self.rows = rows
        short = ", ".join(f"{c} {s} {a}/{r}" for c, s, a, r in rows if a < r)
        super().__init__("--train-per-class/--test-per-class",
                         f"too few candidate crops (available/requested: {short}); lower the "
                         "counts, add scenes, or pass --allow-short to write what exists")

    def table(self) -> str:
        lines = [f"{'class':<18} {'split':<6} {'available':>10} {'requested':>10}"]
        for c, s, a, r in self.rows:
            lines.append(f"{c:<18} {s:<6} {a:>10} {r:>10}" + ("   short" if a < r else ""))
        return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Candidates
# --------------------------------------------------------------------------------------
@dataclass
class Candidates:
    """The crops one scene can give, in time order (labels row, then object index).

    rows / objs: (N,) labels row and object index; squares: (N, 3) [x0, y0, side] px;
    labels: (N,) class label (index in the export's class table).
    """

    rows: np.ndarray
    objs: np.ndarray
    squares: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def keys(self, n_objects: int) -> np.ndarray:
        """One sortable int per candidate (row * O + object)."""
        return self.rows * max(n_objects, 1) + self.objs


def scene_candidates(src: SceneSource, class_names: list[str], min_visib: float,
                     min_size: int) -> Candidates:
    bb = src.bbox_visib
    ok = ((src.visib_fract >= min_visib) & (bb[..., 2] > 0)
          & (np.maximum(bb[..., 2], bb[..., 3]) >= max(int(min_size), 1)) & ~src.flagged)
    rows, objs = np.nonzero(ok)  # row-major: time order, then annotation order
    label_of = {c: i for i, c in enumerate(class_names)}
    obj_labels = np.array([label_of[c] for c in src.object_classes], np.int64)
    return Candidates(rows.astype(np.int64), objs.astype(np.int64),
                      crop_squares(bb[rows, objs]),
                      obj_labels[objs] if len(objs) else np.zeros(0, np.int64))


# --------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------
@dataclass
class Plan:
    """Which candidates are chosen, and the pickles they go into."""

    held: list[bool]                       # per scene: test (held out)
    chosen: list[np.ndarray]               # per scene: (N_s,) bool
    pickle_of: dict[tuple[int, int], str]  # (label, scene) -> "<class>_<k>"
    counts: dict[str, dict[str, dict[str, int]]]  # class -> split -> requested/available/chosen
    shortfall: list[tuple[str, str, int, int]]    # (class, split, available, requested)
    present: list[int]                     # labels of classes with objects in any scene


def plan_sampling(sources: list[SceneSource], cands: list[Candidates], class_names: list[str],
                  held: list[bool], cfg: ExportConfig) -> Plan:
    present_names = {c for s in sources for c in s.object_classes}
    present = [i for i, c in enumerate(class_names) if c in present_names]
    chosen = [np.zeros(len(c), bool) for c in cands]
    counts: dict = {}
    shortfall = []
    for label in present:
        name = class_names[label]
        counts[name] = {}
        for si, split in enumerate(SPLITS):
            want = cfg.train_per_class if split == "train" else cfg.test_per_class
            scenes = [i for i in range(len(sources)) if held[i] == (split == "test")]
            groups = [np.flatnonzero(cands[i].labels == label) for i in scenes]
            avail = sum(len(g) for g in groups)
            quota = spread_quota([len(g) for g in groups], want)
            # One generator per (class, split): changing one class leaves the others alone.
            rng = np.random.default_rng([int(cfg.seed), label, si])
            for i, g, k in zip(scenes, groups, quota, strict=True):
                offset = rng.random()
                chosen[i][g[pick_evenly(len(g), k, offset)]] = True
            counts[name][split] = {"requested": int(want), "available": int(avail),
                                   "chosen": int(sum(quota))}
            if avail < want:
                shortfall.append((name, split, int(avail), int(want)))
    pickle_of: dict[tuple[int, int], str] = {}
    for label in present:
        k = 0
        for i, c in enumerate(cands):
            if np.any(c.labels == label):
                k += 1
                pickle_of[(label, i)] = f"{class_names[label]}_{k}"
    return Plan(held, chosen, pickle_of, counts, shortfall, present)


# --------------------------------------------------------------------------------------
# Crops and their per-scene caches
# --------------------------------------------------------------------------------------
def crop_task(task) -> tuple[int, int, np.ndarray]:
    """Worker: crops of a run of frames. task = (scene index, first candidate index,
    [(rgb path, squares (n, 3))...], (H, W)); returns (scene, start, (N, 32, 32, 3) RGB)."""
    si, start, frames, (H, W) = task
    n = sum(len(sq) for _, sq in frames)
    out = np.empty((n, CROP_SIZE, CROP_SIZE, 3), np.uint8)
    k = 0
    for path, squares in frames:
        img = cv2.imread(path, cv2.IMREAD_COLOR)  # BGR; flipped once per batch below
        if img is None:
            raise BadInput(path, "unreadable image (not a valid PNG/JPEG)")
        if img.shape[:2] != (H, W):
            raise BadInput(path, f"size {img.shape[1]}x{img.shape[0]} differs from the "
                                 f"labels' {W}x{H}")
        for sq in squares:
            out[k] = crop_resize(img, tuple(int(v) for v in sq), CROP_SIZE, CROP_PAD_RGB[::-1])
            k += 1
    return si, start, np.ascontiguousarray(out[..., ::-1])


def _rgb_fingerprint(src: SceneSource, rows: np.ndarray) -> str:
    """Identity of the colour frames used: name, size and mtime of each file."""
    import hashlib

    h = hashlib.sha256()
    for r in np.unique(rows):
        p = src.rgb_path(int(src.frame_ids[r]))
        st = p.stat()
        h.update(f"{p.name} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _cache_key(src: SceneSource, cand: Candidates) -> str:
    return json.dumps({"version": CACHE_VERSION, "labels_sha256": src.labels_sha256,
                       "rgb": _rgb_fingerprint(src, cand.rows), "crop_size": CROP_SIZE,
                       "crop_margin": CROP_MARGIN, "pad_rgb": list(CROP_PAD_RGB)}, sort_keys=True)


def _cache_positions(path: Path, key: str, keys: np.ndarray) -> np.ndarray | None:
    """Rows of the cache holding `keys` when the cache is complete, current and holds them all."""
    import h5py

    if not path.is_file():
        return None
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("key") != key or not bool(f.attrs.get("complete", False)):
                return None
            have = f["keys"][()]
    except (OSError, KeyError):
        return None
    pos = np.searchsorted(have, keys)
    if len(keys) and (pos.max() >= len(have) or not np.array_equal(have[pos], keys)):
        return None
    return pos


@dataclass
class SceneCrops:
    """Where one scene's crops are: an HDF5 file with /crops, and the rows to read."""

    path: Path | None
    positions: np.ndarray
    reused: bool


def _writable(d: Path) -> bool:
    return d.is_dir() and os.access(d, os.W_OK)


def build_crops(sources: list[SceneSource], cands: list[Candidates], cfg: ExportConfig,
                scratch: Path, progress_cb) -> list[SceneCrops]:
    """Crop every candidate, reusing up-to-date caches (SCENE/labels/crops_cache.h5).

    Scenes whose labels folder is not writable (or with cfg.cache False) are cropped into
    `scratch` (inside the output's temporary folder, removed at the end).
    """
    import h5py

    out: list[SceneCrops | None] = [None] * len(sources)
    todo: list[tuple[int, Path, str]] = []
    for i, (src, cand) in enumerate(zip(sources, cands, strict=True)):
        if len(cand) == 0:
            out[i] = SceneCrops(None, np.zeros(0, np.int64), False)
            continue
        keys = cand.keys(src.n_objects)
        key = _cache_key(src, cand)
        cache = src.scene.paths.labels_dir / CACHE_NAME
        if cfg.cache:
            pos = _cache_positions(cache, key, keys)
            if pos is not None:
                out[i] = SceneCrops(cache, pos, True)
                continue
        if not (cfg.cache and _writable(cache.parent)):
            cache = scratch / f"scene{i:04d}_{CACHE_NAME}"
        todo.append((i, cache, key))
    if not todo:
        return out  # type: ignore[return-value]

    tasks = []
    for i, _, _ in todo:
        src, cand = sources[i], cands[i]
        H, W = src.scene.camera.height, src.scene.camera.width  # noqa: N806
        bounds = np.flatnonzero(np.diff(cand.rows)) + 1
        starts = np.concatenate([[0], bounds])
        ends = np.concatenate([bounds, [len(cand)]])
        batch, bstart, n = [], 0, 0
        for a, b in zip(starts, ends, strict=True):
            if not batch:
                bstart = int(a)
            fid = int(src.frame_ids[cand.rows[a]])
            batch.append((str(src.rgb_path(fid)), cand.squares[a:b]))
            n += int(b - a)
            if n >= TASK_CROPS:
                tasks.append((i, bstart, batch, (H, W)))
                batch, n = [], 0
        if batch:
            tasks.append((i, bstart, batch, (H, W)))

    totals = {i: (sources[i].name, len(cands[i])) for i, _, _ in todo}
    progress = Progress(sum(len(cands[i]) for i, _, _ in todo), "crops", totals,
                        cfg.progress_bars, progress_cb)
    open_files: dict[int, tuple] = {}
    remaining = {i: len(cands[i]) for i, _, _ in todo}
    dest = {i: (cache, key) for i, cache, key in todo}
    try:
        for si, start, crops in run_tasks(crop_task, tasks, cfg.n_workers):
            if si not in open_files:
                cache, key = dest[si]
                tmp = cache.with_name(f".{cache.stem}.{os.getpid()}.tmp.h5")
                f = h5py.File(tmp, "w")
                n = len(cands[si])
                f.attrs["key"] = key
                f.attrs["complete"] = False
                f.create_dataset("keys", data=cands[si].keys(sources[si].n_objects))
                f.create_dataset("squares", data=cands[si].squares)
                f.create_dataset("crops", shape=(n, CROP_SIZE, CROP_SIZE, 3), dtype=np.uint8,
                                 chunks=(min(n, 1024), CROP_SIZE, CROP_SIZE, 3))
                open_files[si] = (f, tmp)
            f, tmp = open_files[si]
            f["crops"][start:start + len(crops)] = crops
            remaining[si] -= len(crops)
            if remaining[si] == 0:
                f.attrs["complete"] = True
                f.close()
                del open_files[si]
                cache = dest[si][0]
                os.replace(tmp, cache)
                out[si] = SceneCrops(cache, np.arange(len(cands[si])), False)
            progress.update(si, len(crops))
    finally:
        progress.close()
        for f, tmp in open_files.values():
            f.close()
            tmp.unlink(missing_ok=True)
    return out  # type: ignore[return-value]


# --------------------------------------------------------------------------------------
# Writing the dataset
# --------------------------------------------------------------------------------------
def _contact_sheet(samples: dict[int, list[np.ndarray]], class_names: list[str],
                   counts: dict) -> np.ndarray:
    """RGB image: one row per class (name and counts on the left), crops scaled up."""
    cell = CROP_SIZE * SHEET_SCALE
    labels = [lab for lab in sorted(samples)]
    H = max(1, len(labels)) * (cell + 4) + 4  # noqa: N806
    W = SHEET_LABEL_W + SHEET_COLS * (cell + 4) + 4  # noqa: N806
    img = np.full((H, W, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for r, lab in enumerate(labels):
        y = 4 + r * (cell + 4)
        name = class_names[lab]
        c = counts.get(name, {})
        tr, te = c.get("train", {}).get("chosen", 0), c.get("test", {}).get("chosen", 0)
        cv2.putText(img, f"{lab} {name}", (6, y + cell // 2 - 4), font, 0.55, (0, 0, 0), 1,
                    cv2.LINE_AA)
        cv2.putText(img, f"train {tr}  test {te}", (6, y + cell // 2 + 18), font, 0.45,
                    (90, 90, 90), 1, cv2.LINE_AA)
        for j, crop in enumerate(samples[lab][:SHEET_COLS]):
            x = SHEET_LABEL_W + j * (cell + 4)
            img[y:y + cell, x:x + cell] = cv2.resize(crop, (cell, cell),
                                                     interpolation=cv2.INTER_NEAREST)
    return img


def _write_dataset(root: Path, sources: list[SceneSource], cands: list[Candidates],
                   crops: list[SceneCrops], plan: Plan, class_names: list[str],
                   cfg: ExportConfig) -> dict:
    """Pickles, meta.pkl, crops.h5 and the contact sheet into `root`; returns pickle info."""
    import h5py

    pdir = root / PROPS_DIR
    pdir.mkdir(parents=True)
    N = sum(len(c) for c in cands)  # noqa: N806
    # Contact sheet: SHEET_COLS random chosen crops per class, picked up while copying.
    rng = np.random.default_rng([int(cfg.seed), 7])
    sheet_pick: dict[int, set[tuple[int, int]]] = {}
    for label in plan.present:
        members = [(i, int(j)) for i, c in enumerate(cands)
                   for j in np.flatnonzero(plan.chosen[i] & (c.labels == label))]
        if members:
            sel = rng.choice(len(members), size=min(SHEET_COLS, len(members)), replace=False)
            sheet_pick[label] = {members[k] for k in sel}
    samples: dict[int, list[np.ndarray]] = {lab: [] for lab in sheet_pick}
    pickles: dict[str, dict] = {}
    S = h5py.string_dtype("utf-8")  # noqa: N806
    with h5py.File(root / CROPS_NAME, "w") as out:
        out.attrs["classes"] = json.dumps(class_names)
        out.attrs["scenes"] = json.dumps([str(s.root) for s in sources])
        out.attrs["options"] = json.dumps(cfg.options())
        out.attrs["crop"] = ("square around bbox_visib, side max(w, h) * (1 + 2 * "
                             f"{CROP_MARGIN}), padded black, resized to {CROP_SIZE}x{CROP_SIZE} "
                             "with cv2.INTER_AREA; RGB")
        dset = out.create_dataset("crops", shape=(N, CROP_SIZE, CROP_SIZE, 3), dtype=np.uint8,
                                  chunks=(max(1, min(N, 1024)), CROP_SIZE, CROP_SIZE, 3))
        meta = {k: [] for k in ("scene", "frame_id", "object_id", "label", "bbox_visib", "square",
                                "visib_fract", "score", "split", "chosen", "pickle",
                                "pickle_index")}
        off = 0
        for i, (src, cand, sc) in enumerate(zip(sources, cands, crops, strict=True)):
            n = len(cand)
            if n == 0:
                continue
            split = "test" if plan.held[i] else "train"
            chosen = plan.chosen[i]
            chosen_idx = np.flatnonzero(chosen)
            got = np.empty((len(chosen_idx), CROP_SIZE, CROP_SIZE, 3), np.uint8)
            with h5py.File(sc.path, "r") as f:
                src_crops = f["crops"]
                for a in range(0, n, COPY_BLOCK):
                    b = min(a + COPY_BLOCK, n)
                    p = sc.positions[a:b]
                    block = src_crops[int(p[0]):int(p[-1]) + 1][p - p[0]]
                    dset[off + a:off + b] = block
                    lo, hi = np.searchsorted(chosen_idx, [a, b])
                    got[lo:hi] = block[chosen_idx[lo:hi] - a]
            pk_name = np.full(n, "", object)
            pk_index = np.full(n, -1, np.int64)
            for label in np.unique(cand.labels):
                label = int(label)
                sel = chosen[cand.labels == label]
                idx = np.flatnonzero(cand.labels == label)[sel]  # chosen, time order
                name = plan.pickle_of[(label, i)]
                data = got[np.searchsorted(chosen_idx, idx)]
                # plain writes: the whole folder is renamed into place at the end
                (pdir / f"{name}.pkl").write_bytes(dumps_compat(
                    {"data": data, "labels": [label] * len(idx)}))
                pickles[name] = {"class": class_names[label], "label": label, "scene": src.name,
                                 "scene_path": str(src.root), "split": split, "count": len(idx)}
                pk_name[idx] = name
                pk_index[idx] = np.arange(len(idx))
                for j, k in enumerate(idx):
                    if (i, int(k)) in sheet_pick.get(label, ()):
                        samples[label].append(data[j])
            meta["scene"].append(np.full(n, i, np.int32))
            meta["frame_id"].append(src.frame_ids[cand.rows].astype(np.int32))
            meta["object_id"].append(src.object_ids[cand.objs].astype(np.int32))
            meta["label"].append(cand.labels.astype(np.int32))
            meta["bbox_visib"].append(src.bbox_visib[cand.rows, cand.objs].astype(np.int32))
            meta["square"].append(cand.squares.astype(np.int32))
            meta["visib_fract"].append(src.visib_fract[cand.rows, cand.objs].astype(np.float32))
            meta["score"].append(src.score[cand.rows, cand.objs].astype(np.float32))
            meta["split"].append(np.full(n, split, object))
            meta["chosen"].append(chosen)
            meta["pickle"].append(pk_name)
            meta["pickle_index"].append(pk_index.astype(np.int32))
            off += n
        empty = {"scene": np.int32, "frame_id": np.int32, "object_id": np.int32,
                 "label": np.int32, "visib_fract": np.float32, "score": np.float32,
                 "chosen": bool, "pickle_index": np.int32}
        for k, parts in meta.items():
            if parts:
                arr = np.concatenate(parts)
            elif k in ("bbox_visib", "square"):
                arr = np.zeros((0, 4 if k == "bbox_visib" else 3), np.int32)
            else:
                arr = np.zeros(0, empty.get(k, object))
            if arr.dtype == object:
                out.create_dataset(k, data=arr.astype(str).tolist() if len(arr) else [], dtype=S)
            else:
                out.create_dataset(k, data=arr)
        out.create_dataset("class_names", data=class_names, dtype=S)
        out.create_dataset("scene_names", data=[s.name for s in sources], dtype=S)
    test_split = [name for (label, i), name in sorted(plan.pickle_of.items()) if plan.held[i]]
    (pdir / META_NAME).write_bytes(dumps_compat({"test_split": test_split}))
    sheet = _contact_sheet(samples, class_names, plan.counts)
    ok, buf = cv2.imencode(".png", sheet[:, :, ::-1])
    (root / SHEET_NAME).write_bytes(buf.tobytes())
    return {"pickles": pickles, "test_split": test_split}


def _summary_lines(sources, plan: Plan, class_names, short_written: bool) -> list[str]:
    train = [s.name for s, h in zip(sources, plan.held, strict=True) if not h]
    test = [s.name for s, h in zip(sources, plan.held, strict=True) if h]
    lines = [f"scenes: train {', '.join(train) or '-'}; test {', '.join(test) or '-'}",
             f"{'label':>5} {'class':<18} {'train':>13} {'test':>13}   (chosen/requested)"]
    tot = {"train": 0, "test": 0}
    for label in plan.present:
        name = class_names[label]
        c = plan.counts[name]
        cells = []
        for split in SPLITS:
            tot[split] += c[split]["chosen"]
            cells.append(f"{c[split]['chosen']}/{c[split]['requested']}")
        lines.append(f"{label:>5} {name:<18} {cells[0]:>13} {cells[1]:>13}")
    lines.append(f"{'':>5} {'total':<18} {tot['train']:>13} {tot['test']:>13}")
    absent = [c for i, c in enumerate(class_names) if i not in plan.present]
    if absent:
        lines.append(f"no objects in any scene: {', '.join(absent)}")
    if short_written:
        lines.append("short (--allow-short): " + ", ".join(
            f"{c} {s} {a}/{r}" for c, s, a, r in plan.shortfall))
    return lines


def export_props(cfg: ExportConfig, progress=None) -> ExportSummary:
    t0 = time.perf_counter()
    out = Path(cfg.out)
    sources = open_sources(cfg.scenes)
    check_out_dir(out, sources, cfg.overwrite)
    class_names = class_table(sources)
    held = choose_test_scenes(sources, cfg.test_scenes, cfg.seed)
    if cfg.train_per_class > 0 and all(held):
        raise BadInput("--test-scenes", "holds out every scene; leave at least one for training")
    cands = [scene_candidates(s, class_names, cfg.min_visib, cfg.min_size) for s in sources]
    plan = plan_sampling(sources, cands, class_names, held, cfg)
    if plan.shortfall and not cfg.allow_short:
        rows = [(class_names[lab], split, c[split]["available"], c[split]["requested"])
                for lab in plan.present for split, c in [(s, plan.counts[class_names[lab]])
                                                         for s in SPLITS]]
        raise ShortfallError(rows)
    warns: list[str] = []
    if plan.shortfall:
        emit_warning(warns, "fewer crops than requested (--allow-short): " + ", ".join(
            f"{c} {s} {a}/{r}" for c, s, a, r in plan.shortfall))
    n_test = sum(held)
    if n_test == 0 and cfg.test_per_class > 0:
        emit_warning(warns, "one scene only: nothing is held out for testing")
    with atomic_dir(out, overwrite=cfg.overwrite) as tmp:
        scratch = tmp / ".scratch"
        scratch.mkdir()
        crops = build_crops(sources, cands, cfg, scratch, progress)
        info = _write_dataset(tmp, sources, cands, crops, plan, class_names, cfg)
        for p in scratch.iterdir():
            p.unlink()
        scratch.rmdir()
        sources_info = []
        for s, h, c, sc in zip(sources, held, cands, crops, strict=True):
            d = s.describe()
            d.update(split="test" if h else "train", candidates=len(c),
                     crop_cache=str(sc.path) if sc.path and sc.path.parent != scratch else None,
                     crop_cache_reused=sc.reused)
            sources_info.append(d)
        body = {
            "export_format": "props",
            "layout": {"pickles": f"{PROPS_DIR}/<class>_<k>.pkl", "meta": f"{PROPS_DIR}/{META_NAME}",
                       "crops": CROPS_NAME, "contact_sheet": SHEET_NAME},
            "options": cfg.options(),
            "classes": class_names,
            "sources": sources_info,
            "counts": plan.counts,
            "totals": {s: sum(plan.counts[c][s]["chosen"] for c in plan.counts) for s in SPLITS},
            "test_split": info["test_split"],
            "pickles": info["pickles"],
            "shortfall": [{"class": c, "split": s, "available": a, "requested": r}
                          for c, s, a, r in plan.shortfall],
            "warnings": warns,
        }
        finish_permissions(tmp)
        write_manifest(tmp, to_jsonable(body))
    lines = _summary_lines(sources, plan, class_names, bool(plan.shortfall))
    lines.append(f"pickles: {out / PROPS_DIR} ({len(info['pickles'])} files + {META_NAME}); "
                 f"all candidates: {out / CROPS_NAME}")
    return ExportSummary("props", out, lines, plan.counts, warns, out / SHEET_NAME,
                         out / "manifest.json", time.perf_counter() - t0)
