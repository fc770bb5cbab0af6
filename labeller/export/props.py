"""PROPS classification crops (`labeller export --format props`), docs/design.md layout:

    OUT/Progress-Objects-Sample/meta.pkl        {"test_split": ["mug_3", ...]}
    OUT/Progress-Objects-Sample/<class>_<k>.pkl {"data": uint8 (n, 32, 32, 3) RGB,
                                                 "labels": [int] * n}
    OUT/md5.json            [[file name, md5], ...] of that folder: the course loaders'
                            `object_list` for this export (docs/export.md)
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
A PROPS class without crops in a split is refused (the course notebooks need all ten)
unless allow_short, which writes it with a warning.
"""

from __future__ import annotations

import time
from pathlib import Path

from labeller.core.errors import BadInput
from labeller.core.fileio import atomic_dir, atomic_write_text
from labeller.core.progress import ProgressFn
from labeller.export.config import ExportConfig, ExportSummary, emit_warning
from labeller.export.output import check_out_dir, finish_permissions, to_jsonable, write_manifest
from labeller.export.props_candidates import (
    SPLITS,
    Plan,
    missing_props_classes,
    plan_sampling,
    scene_candidates,
)
from labeller.export.props_crop_cache import build_crops
from labeller.export.props_dataset import CROPS_NAME, SHEET_NAME, write_dataset
from labeller.export.sampling import choose_test_scenes
from labeller.export.sources import SceneSource, class_table, open_sources
from labeller.formats.props import MD5_FILE, META_FILE, PROPS_FOLDER, md5_json, md5_list


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


def _missing_text(missing: list[tuple[str, str]]) -> str:
    """'sugar_box (train, test), mug (test)'."""
    by_class: dict[str, list[str]] = {}
    for c, split in missing:
        by_class.setdefault(c, []).append(split)
    return ", ".join(f"{c} ({', '.join(s)})" for c, s in by_class.items())


def _summary_lines(sources: list[SceneSource], plan: Plan, class_names: list[str],
                   short_written: bool) -> list[str]:
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


def export_props(cfg: ExportConfig, progress: ProgressFn | None = None) -> ExportSummary:
    """Write `cfg.scenes` as a PROPS classification dataset into `cfg.out` (module doc)."""
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
    missing = missing_props_classes(plan, class_names, cfg)
    if missing and not cfg.allow_short:
        raise BadInput("SCENE", f"no crops of {_missing_text(missing)}: the course notebooks "
                                "need all ten PROPS classes (their example grid fails on a "
                                "missing one); add scenes that show them, lower --min-visib / "
                                "--min-size, or pass --allow-short")
    warns: list[str] = []
    if plan.shortfall:
        emit_warning(warns, "fewer crops than requested (--allow-short): " + ", ".join(
            f"{c} {s} {a}/{r}" for c, s, a, r in plan.shortfall))
    if missing:
        emit_warning(warns, f"NOT USABLE AS IS IN THE COURSE NOTEBOOKS: no crops of "
                            f"{_missing_text(missing)} (--allow-short); they need all ten "
                            "PROPS classes and their example grid fails on a missing one")
    n_test = sum(held)
    if n_test == 0 and cfg.test_per_class > 0:
        emit_warning(warns, "one scene only: nothing is held out for testing")
    with atomic_dir(out, overwrite=cfg.overwrite) as tmp:
        scratch = tmp / ".scratch"
        scratch.mkdir()
        crops = build_crops(sources, cands, cfg, scratch, progress)
        info = write_dataset(tmp, sources, cands, crops, plan, class_names, cfg)
        for p in scratch.iterdir():
            p.unlink()
        scratch.rmdir()
        names = [META_FILE, *sorted(f"{n}.pkl" for n in info["pickles"])]
        atomic_write_text(tmp / MD5_FILE, md5_json(md5_list(tmp / PROPS_FOLDER, names)))
        sources_info = []
        for s, h, c, sc in zip(sources, held, cands, crops, strict=True):
            d = s.describe()
            d.update(split="test" if h else "train", candidates=len(c),
                     crop_cache=str(sc.path) if sc.path and sc.path.parent != scratch else None,
                     crop_cache_reused=sc.reused)
            sources_info.append(d)
        body = {
            "export_format": "props",
            "layout": {"pickles": f"{PROPS_FOLDER}/<class>_<k>.pkl",
                       "meta": f"{PROPS_FOLDER}/{META_FILE}",
                       "crops": CROPS_NAME, "contact_sheet": SHEET_NAME,
                       "md5": MD5_FILE},
            "options": cfg.options(),
            "classes": class_names,
            "sources": sources_info,
            "counts": plan.counts,
            "totals": {s: sum(plan.counts[c][s]["chosen"] for c in plan.counts) for s in SPLITS},
            "test_split": info["test_split"],
            "pickles": info["pickles"],
            "shortfall": [{"class": c, "split": s, "available": a, "requested": r}
                          for c, s, a, r in plan.shortfall],
            "missing_classes": [{"class": c, "split": s} for c, s in missing],
            "warnings": warns,
        }
        finish_permissions(tmp)
        write_manifest(tmp, to_jsonable(body))
    lines = _summary_lines(sources, plan, class_names, bool(plan.shortfall))
    lines.append(f"pickles: {out / PROPS_FOLDER} ({len(info['pickles'])} files + {META_FILE}); "
                 f"all candidates: {out / CROPS_NAME}")
    lines.append(f"course loaders' object_list: {out / MD5_FILE} (docs/export.md, \"use this "
                 "export in the course notebook\")")
    return ExportSummary("props", out, lines, plan.counts, warns, out / SHEET_NAME,
                         out / "manifest.json", time.perf_counter() - t0)
