"""Writing a PROPS classification dataset: the class pickles and meta.pkl
(`labeller.formats.props`), crops.h5 with every candidate and its metadata, and the
contact sheet.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from labeller.core.diskspace import HDF5_OVERHEAD_BYTES, check_room
from labeller.export.config import ExportConfig
from labeller.export.crops import CROP_MARGIN, CROP_SIZE
from labeller.export.props_candidates import Candidates, Plan
from labeller.export.props_crop_cache import SceneCrops
from labeller.export.sources import SceneSource
from labeller.formats.props import META_FILE, PROPS_FOLDER, class_pickle_bytes, meta_bytes

CROPS_NAME = "crops.h5"
SHEET_NAME = "contact_sheet.png"
# Rows of crops copied per HDF5 read/write when assembling the output.
COPY_BLOCK = 8192
SHEET_COLS = 12
SHEET_SCALE = 3
SHEET_LABEL_W = 230
# crops.h5's metadata per row (scene name, ids, boxes, scores, split and pickle columns),
# generously: a path of a few hundred bytes plus about twenty numbers.
META_BYTES_PER_ROW = 512


def crops_file_bytes(n_rows: int) -> int:
    """An upper estimate of crops.h5's size for `n_rows` crops: pixels, metadata, HDF5."""
    return HDF5_OVERHEAD_BYTES + n_rows * (CROP_SIZE * CROP_SIZE * 3 + META_BYTES_PER_ROW)


def contact_sheet(samples: dict[int, list[np.ndarray]], class_names: list[str],
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


def write_dataset(root: Path, sources: list[SceneSource], cands: list[Candidates],
                   crops: list[SceneCrops], plan: Plan, class_names: list[str],
                   cfg: ExportConfig) -> dict:
    """Pickles, meta.pkl, crops.h5 and the contact sheet into `root`; returns pickle info."""
    import h5py

    pdir = root / PROPS_FOLDER
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
    # HDF5 does not survive a failed write (it can crash the process): ask for the whole
    # file's room first and stop with a clean disk error naming crops.h5.
    check_room(root / CROPS_NAME, crops_file_bytes(N), size_now=0)
    with h5py.File(root / CROPS_NAME, "w") as out:
        out.attrs["classes"] = json.dumps(class_names)
        out.attrs["scenes"] = json.dumps([str(s.root) for s in sources])
        out.attrs["options"] = json.dumps(cfg.options())
        out.attrs["crop"] = ("square around bbox_visib, side max(w, h) * (1 + 2 * "
                             f"{CROP_MARGIN}), padded black, resized to {CROP_SIZE}x{CROP_SIZE} "
                             "with cv2.INTER_AREA; RGB")
        dset = out.create_dataset("crops", shape=(N, CROP_SIZE, CROP_SIZE, 3), dtype=np.uint8,
                                  chunks=(max(1, min(N, 1024)), CROP_SIZE, CROP_SIZE, 3))
        meta: dict[str, list[np.ndarray]] = {k: [] for k in ("scene", "frame_id", "object_id", "label", "bbox_visib", "square",
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
                (pdir / f"{name}.pkl").write_bytes(class_pickle_bytes(data, [label] * len(idx)))
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
    (pdir / META_FILE).write_bytes(meta_bytes(test_split))
    sheet = contact_sheet(samples, class_names, plan.counts)
    ok, buf = cv2.imencode(".png", sheet[:, :, ::-1])
    (root / SHEET_NAME).write_bytes(buf.tobytes())
    return {"pickles": pickles, "test_split": test_split}
