"""`labels.h5`: the per-frame labels `labeller propagate` writes (schema: docs/labels_h5.md).

One HDF5 file per scene (SCENE/labels/labels.h5). Per labelled frame and object: the
propagated pose, an optional ICP-refined pose stored beside it, BOP boxes and pixel
counts, a depth-consistency score and a review flag; per frame the visible-instance
mask, per frame and object the object-alone mask (both chunked one image per chunk and
gzip-compressed, so reading one frame decompresses one chunk).

Modules:

* `schema`: format name and version, the per-object fields (`OBJECT_FIELDS`), the root
  attributes (`LabelsMeta`), `LabelObject`, the per-frame `FrameRecord`, `compress_mask`
  the review `flag_rule` and the colour states (`COLOUR_STATE_NAMES`).
* `writer`: `LabelsWriter` writes a file in place (the propagation stage points it at
  `labels.h5.partial` and renames that at the end); `/frames/done` records which frames
  are written, so an interrupted run resumes.
* `reader`: `Labels` reads a finished file (`FrameLabels`, `ObjectLabels` per frame).
"""

from labeller.formats.labels.reader import FrameLabels, Labels, ObjectLabels
from labeller.formats.labels.schema import (
    COLOUR_FLAGGED,
    COLOUR_NO_TEXTURE,
    COLOUR_NOT_COMPUTED,
    COLOUR_OK,
    COLOUR_STATE_NAMES,
    COLOUR_UNDECIDABLE,
    LABELS_FORMAT,
    LABELS_VERSION,
    MASK_GZIP_LEVEL,
    OBJECT_FIELDS,
    REQUIRED_ATTRS,
    ROW_CHUNK,
    FrameRecord,
    LabelObject,
    LabelsMeta,
    compress_mask,
    flag_rule,
)
from labeller.formats.labels.writer import LabelsWriter

__all__ = [
    "COLOUR_FLAGGED",
    "COLOUR_NOT_COMPUTED",
    "COLOUR_NO_TEXTURE",
    "COLOUR_OK",
    "COLOUR_STATE_NAMES",
    "COLOUR_UNDECIDABLE",
    "LABELS_FORMAT",
    "LABELS_VERSION",
    "MASK_GZIP_LEVEL",
    "OBJECT_FIELDS",
    "REQUIRED_ATTRS",
    "ROW_CHUNK",
    "FrameLabels",
    "FrameRecord",
    "LabelObject",
    "Labels",
    "LabelsMeta",
    "LabelsWriter",
    "ObjectLabels",
    "compress_mask",
    "flag_rule",
]
