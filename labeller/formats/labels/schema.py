"""What a labels.h5 file holds (docs/labels_h5.md): format, fields, records, the flag rule.

Shared by the writer and the reader; no HDF5 here.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

LABELS_FORMAT = "labeller-labels"
# Version 2: boxes have w = x_max - x_min and px_count_all / bbox_obj cover the whole
# silhouette on a 3x canvas (the BOP toolkit's calc_gt_info). Version-1 files (boxes one
# pixel wider, counts and bbox_obj clipped to the image) stay readable; a run never
# resumes one, and the BOP export refuses one (GT_INFO_MIN_VERSION).
# Version 3: damage is detected on read. Checksummed HDF5 metadata (the file format of
# HDF5 1.10) holding every attribute (fixed-length strings), the Fletcher32 filter on
# every other dataset (strings fixed-length too: nothing in the unchecked global heap);
# masks are protected by their deflate streams' Adler-32. Version-2 files stay readable
# (their values are validated); a run never resumes one.
# Version 4: the colour check (flip QA): colour_score, colour_turned_score and
# colour_state per label; the review flag also covers colour_state == COLOUR_FLAGGED.
# Version-3 files stay readable (their colour fields read as not computed); a run never
# resumes one.
LABELS_VERSION = 4
# Written in HDF5 1.10's file format (its object headers and chunk indices carry
# checksums; HDF5 >= 1.10 reads it), with up to this many attributes kept in an object's
# header (beyond HDF5's default of 8 they move to a heap without checksums).
COMPACT_ATTRS = 64
GT_INFO_MIN_VERSION = 2
# Masks are compressed by the producer (zlib = HDF5's gzip/deflate filter) and written
# as raw chunks, so worker processes do the compression, not the writing process.
MASK_GZIP_LEVEL = 1
# Small per-frame arrays are chunked by this many frames (one h5 read per ~256 frames).
ROW_CHUNK = 256

# Per-frame, per-object arrays: name -> (dtype, shape after (F, O), fill value).
OBJECT_FIELDS: dict[str, tuple[str, tuple[int, ...], object]] = {
    "T_cam_obj": ("f8", (4, 4), np.nan),
    "T_cam_obj_refined": ("f8", (4, 4), np.nan),
    "refined": ("bool", (), False),
    "score_refined": ("f4", (), np.nan),
    "refine_moved_m": ("f4", (), np.nan),
    "refine_turned_deg": ("f4", (), np.nan),
    "bbox_obj": ("i4", (4,), -1),
    "bbox_visib": ("i4", (4,), -1),
    "px_count_all": ("i4", (), 0),
    "px_count_valid": ("i4", (), 0),
    "px_count_visib": ("i4", (), 0),
    # ext (version 2): pixels of the alone render inside the image (px_count_all counts
    # the 3x canvas); "in view" means > 0
    "px_count_image": ("i4", (), 0),
    "visib_fract": ("f4", (), 0.0),
    "score": ("f4", (), np.nan),
    "median_abs_dz_m": ("f4", (), np.nan),
    "score_fract": ("f4", (), 0.0),
    "flagged": ("bool", (), False),
    # ext (version 4): the colour check (labeller.geometry.colour_consistency): the
    # label's gradient correlation with the frame (-1..1, NaN: not computed), the best of
    # its 180-degree-turned alternatives, and the state (COLOUR_STATE_NAMES)
    "colour_score": ("f4", (), np.nan),
    "colour_turned_score": ("f4", (), np.nan),
    "colour_state": ("u1", (), 0),
}
# colour_state values (uint8). Codes are stored: append, never renumber.
COLOUR_NOT_COMPUTED, COLOUR_OK, COLOUR_FLAGGED, COLOUR_UNDECIDABLE, COLOUR_NO_TEXTURE = range(5)
COLOUR_STATE_NAMES = ("not computed", "ok", "flip suspected", "undecidable", "no texture")
# Root attributes every version-1 file has.
REQUIRED_ATTRS = ("format", "version", "width", "height", "n_frames", "delta_m",
                  "flag_min_score", "flag_min_visib", "refine", "trajectory_sha256",
                  "annotations_sha256", "classes", "labeller_version", "complete")


@dataclass
class LabelsMeta:
    """Root attributes (see docs/labels_h5.md). `inputs` fingerprints what the labels
    were computed from (hashes and settings); a run resumes only when it matches."""

    width: int
    height: int
    n_frames: int
    delta_m: float
    flag_min_score: float
    flag_min_visib: float
    refine: str
    trajectory_sha256: str
    annotations_sha256: str
    classes: list[str]
    occlusion_margin_m: float
    icp_max_trans_m: float
    icp_max_rot_deg: float
    labeller_version: str = ""
    inputs: dict = field(default_factory=dict)


@dataclass
class LabelObject:
    """One annotated object: instance id, class name, model path as stored, T_world_obj."""

    id: int
    class_name: str
    model: str
    T_world_obj: np.ndarray


@dataclass
class FrameRecord:
    """Everything written for one labelled frame (row `index` of /frames). O objects.

    Arrays are (O, ...) in annotation order; `mask_visib_z` is the zlib-compressed
    (H, W) uint16 visible-instance image, `mask_full_z[i]` the zlib-compressed (H, W)
    uint8 object-alone mask of object i, or None when the object renders nowhere.
    """

    index: int
    frame_id: int
    arrays: dict[str, np.ndarray]
    mask_visib_z: bytes
    mask_full_z: list[bytes | None]


def compress_mask(mask: np.ndarray) -> bytes:
    """zlib stream of a C-ordered mask: exactly what HDF5's gzip filter stores for a chunk."""
    return zlib.compress(np.ascontiguousarray(mask).tobytes(), MASK_GZIP_LEVEL)


def flag_rule(score: np.ndarray, score_fract: np.ndarray, min_score: float,
              min_visib: float, colour_state: np.ndarray | None = None) -> np.ndarray:
    """Flagged where the score is below `min_score` on an object whose scored part covers at
    least `min_visib` of its full mask (score_fract; see docs/propagate.md for why not
    visib_fract), or where the colour check suspects a flip (colour_state ==
    COLOUR_FLAGGED, same shape as score). NaN scores are never flagged by depth."""
    with np.errstate(invalid="ignore"):
        depth = (score < min_score) & (score_fract >= min_visib) & np.isfinite(score)
    if colour_state is None:
        return depth
    return depth | (np.asarray(colour_state) == COLOUR_FLAGGED)

