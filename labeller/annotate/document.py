"""The annotation document as the GUI edits it: a Qt-free model views listen to.

(Over 400 lines: one class whose state — document, listeners, dirty tracking, model
cache, autosave — every method shares; the class lookup is `labeller.annotate.class_models`.)

`DocumentModel` wraps one scene (`labeller.formats.scene.Scene`) and its
`labeller.formats.annotations.AnnotationDocument`. It is the only place the GUI's edits land: every
change goes through one of its methods (the GUI calls them from `QUndoCommand`s only), and
every change is announced to listeners, so any number of views (main view, multi-view
check, object list, timeline) stay in step without knowing each other (napari/labelme
style: the model knows nothing of Qt).

Events and their callback arguments (`model.subscribe(event, callback)`):

    object_added(obj_id)          object_removed(obj_id)
    pose_changed(obj_id)          keyframes_changed(obj_id)
    visibility_changed(obj_id)    classes_changed()
    trajectory_changed()          dirty_changed(dirty: bool)
    saved(path)

Dirty tracking compares the document's content with the content last saved (or opened),
so undoing back to the saved state makes the document clean again. `save()` writes
`annotations.json` atomically with the `trajectory_sha256` of the trajectory the poses are
expressed against; a failed save raises and leaves the previous file as it was.

Poses are 4x4 float64 `T_world_obj` (metres) in the world frame of `trajectory.txt`;
accessors return copies, so a caller can never change the document behind its back.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from labeller.annotate.class_models import ClassModel, available_classes
from labeller.core.camera import CameraIntrinsics
from labeller.core.classes import class_color
from labeller.core.errors import BadInput, ModelError, SceneError
from labeller.core.fileio import atomic_path, atomic_write_text
from labeller.core.poses import pose_problem
from labeller.formats.annotations import AnnotationDocument, ObjectAnnotation
from labeller.formats.models import ObjectModel, find_class_model, load_model, resolve_model_path
from labeller.formats.scene import Scene
from labeller.formats.trajectory import Trajectory

EVENTS = (
    "object_added",
    "object_removed",
    "pose_changed",
    "keyframes_changed",
    "visibility_changed",
    "classes_changed",
    "trajectory_changed",
    "dirty_changed",
    "saved",
)

Listener = Callable[..., None]


def _content(doc: AnnotationDocument) -> str:
    """What makes a document different from another for "save changes?" (exact floats).

    trajectory_sha256 is left out: it is stamped at save time, not edited.
    """
    d = doc.to_dict()
    d.pop("trajectory_sha256", None)
    return json.dumps(d, sort_keys=True)


class DocumentModel:
    """One open scene and its annotations, with listeners, dirty tracking and save.

    Build it with `DocumentModel.open(scene_dir, models_dir)`. Visibility is view state
    (not saved, does not make the document dirty) but lives here so every view agrees.
    """

    def __init__(self, scene: Scene, doc: AnnotationDocument | None = None,
                 models_dir: str | os.PathLike | None = None,
                 annotations_error: BadInput | None = None):
        self.scene = scene
        self.models_dir = Path(models_dir) if models_dir is not None else None
        self._doc = doc.copy() if doc is not None else AnnotationDocument()
        self._listeners: dict[str, list[Listener]] = {e: [] for e in EVENTS}
        self._hidden: set[int] = set()
        self._models: dict[int, ObjectModel] = {}
        self._model_errors: dict[int, str] = {}
        # The annotations.json that could not be read when the scene was opened: kept
        # untouched; the first save moves it aside (never overwrites it).
        self.annotations_error = annotations_error
        self._saved_content = _content(self._doc)
        self._dirty = False
        self._trajectory: Trajectory | None = None
        self.trajectory_error: SceneError | None = None
        self._trajectory_sha: str | None = None
        self._load_trajectory()

    # -- opening ------------------------------------------------------------------------
    @classmethod
    def open(cls, scene_dir: str | os.PathLike,
             models_dir: str | os.PathLike | None = None) -> DocumentModel:
        """Open a scene for annotation.

        Raises SceneError when the scene itself is invalid (layout, camera, first frame,
        an unreadable trajectory.txt); missing depth frames are allowed
        (`scene.missing_depth`). An unreadable annotations.json does not stop the
        opening: the document starts empty and `annotations_error` says why.
        """
        # A missing depth frame is marked in the GUI, not a reason to refuse the scene.
        scene = Scene(scene_dir, allow_missing_depth=True)
        if scene.has_trajectory:
            scene.trajectory  # noqa: B018 - validates trajectory.txt now, not mid-edit
        doc, err = None, None
        if scene.has_annotations:
            try:
                doc = scene.annotations()
            except BadInput as exc:
                err = exc
        return cls(scene, doc, models_dir, err)

    def _load_trajectory(self) -> None:
        self.trajectory_error = None
        self._trajectory = None
        self._trajectory_sha = None
        if not self.scene.has_trajectory:
            return
        try:
            self._trajectory = Trajectory.read(self.scene.paths.trajectory, self.scene.n_frames)
            self._trajectory_sha = self.scene.trajectory_sha256()
        except SceneError as exc:
            self.trajectory_error = exc

    def reload_trajectory(self) -> None:
        """Re-read trajectory.txt (after tracking wrote it) and tell the views."""
        self.scene._trajectory = None  # the Scene caches it
        self._load_trajectory()
        self._emit("trajectory_changed")

    # -- listeners ----------------------------------------------------------------------
    def subscribe(self, event: str, callback: Listener) -> Callable[[], None]:
        """Call `callback` on `event`; returns a function that unsubscribes it."""
        if event not in self._listeners:
            raise ValueError(f"unknown event {event!r}; one of {', '.join(EVENTS)}")
        self._listeners[event].append(callback)

        def unsubscribe() -> None:
            if callback in self._listeners[event]:
                self._listeners[event].remove(callback)

        return unsubscribe

    def _emit(self, event: str, *args) -> None:
        for cb in list(self._listeners[event]):
            cb(*args)

    def _changed(self) -> None:
        dirty = _content(self._doc) != self._saved_content
        if dirty != self._dirty:
            self._dirty = dirty
            self._emit("dirty_changed", dirty)

    # -- reading ------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        return self.scene.root

    @property
    def camera(self) -> CameraIntrinsics:
        return self.scene.camera

    @property
    def n_frames(self) -> int:
        return self.scene.n_frames

    @property
    def dirty(self) -> bool:
        return self._dirty

    @property
    def has_trajectory(self) -> bool:
        return self._trajectory is not None

    @property
    def trajectory(self) -> Trajectory | None:
        return self._trajectory

    @property
    def trajectory_sha256(self) -> str | None:
        """sha256 of the trajectory.txt the poses are expressed against (as loaded)."""
        return self._trajectory_sha

    @property
    def trajectory_mismatch(self) -> bool:
        """The opened annotations were saved against another trajectory.txt."""
        saved = self._doc.trajectory_sha256
        return bool(saved and self._trajectory_sha and saved != self._trajectory_sha)

    def T_world_cam(self, t: int) -> np.ndarray | None:
        """Camera pose of frame t (4x4 copy), or None when the frame was not tracked."""
        if self._trajectory is None or t not in self._trajectory:
            return None
        return np.array(self._trajectory[t], dtype=np.float64)

    @property
    def classes(self) -> list[str]:
        return list(self._doc.classes)

    @property
    def object_ids(self) -> list[int]:
        return [o.id for o in self._doc.objects]

    def has_object(self, obj_id: int) -> bool:
        return any(o.id == obj_id for o in self._doc.objects)

    def object(self, obj_id: int) -> ObjectAnnotation:
        """A copy of one object (KeyError when absent)."""
        return self._doc.object(obj_id).copy()

    def objects(self) -> list[ObjectAnnotation]:
        return [o.copy() for o in self._doc.objects]

    def index_of(self, obj_id: int) -> int:
        for i, o in enumerate(self._doc.objects):
            if o.id == obj_id:
                return i
        raise KeyError(obj_id)

    def pose(self, obj_id: int) -> np.ndarray:
        """T_world_obj (4x4 float64 copy, metres)."""
        return np.array(self._doc.object(obj_id).T_world_obj, dtype=np.float64)

    def keyframes(self, obj_id: int) -> list[int]:
        return sorted(self._doc.object(obj_id).keyframes)

    def all_keyframes(self) -> list[int]:
        return sorted({k for o in self._doc.objects for k in o.keyframes})

    def next_id(self) -> int:
        return self._doc.next_id()

    def document(self) -> AnnotationDocument:
        """A copy of the whole document (e.g. for autosave or export)."""
        return self._doc.copy()

    def class_color(self, class_name: str) -> tuple[int, int, int]:
        idx = self._doc.classes.index(class_name) if class_name in self._doc.classes else 0
        return class_color(class_name, idx)

    def available_classes(self) -> dict[str, ClassModel]:
        return available_classes(self.root, self.models_dir)

    # -- models -------------------------------------------------------------------------
    def object_model(self, obj_id: int) -> ObjectModel | None:
        """The loaded mesh of an object, or None when it could not be loaded
        (`model_error(obj_id)` says why). Loaded once, then cached."""
        if obj_id in self._models:
            return self._models[obj_id]
        if obj_id in self._model_errors:
            return None
        o = self._doc.object(obj_id)
        try:
            m = load_model(resolve_model_path(o.model, self.root, self.models_dir))
        except BadInput as exc:
            self._model_errors[obj_id] = f"{exc} (object {obj_id}, {o.class_name})"
            return None
        except Exception as exc:  # noqa: BLE001 - a broken mesh must not take the app down
            self._model_errors[obj_id] = (f"{o.model}: cannot load model ({type(exc).__name__}: "
                                          f"{exc}) (object {obj_id}, {o.class_name})")
            return None
        self._models[obj_id] = m
        return m

    def posed_objects(self, ids: list[int] | None = None) -> list:
        """`labeller.annotate.refine.PosedObject`s of the objects whose model loads (document order),
        for scoring, refinement and the propagation preview."""
        from labeller.annotate.refine import PosedObject

        out = []
        for o in self._doc.objects:
            if ids is not None and o.id not in ids:
                continue
            m = self.object_model(o.id)
            if m is not None:
                out.append(PosedObject(o.id, Path(m.path), o.class_name,
                                       np.array(o.T_world_obj, dtype=np.float64)))
        return out

    def model_error(self, obj_id: int) -> str | None:
        self.object_model(obj_id)
        return self._model_errors.get(obj_id)

    def model_errors(self) -> list[str]:
        """One line per object whose model could not be loaded."""
        return [e for i in self.object_ids if (e := self.model_error(i))]

    def new_object(self, class_name: str, T_world_obj: np.ndarray,
                   obj_id: int | None = None) -> ObjectAnnotation:
        """Build (not add) an object of a class with its model resolved and loaded.

        Raises ModelError when the class has no model or the model does not load, so the
        GUI can refuse before anything changes.
        """
        path, stored = find_class_model(class_name, self.root, self.models_dir)
        try:
            load_model(path)
        except BadInput:
            raise
        except Exception as exc:  # noqa: BLE001 - Open3D raises plain RuntimeErrors
            raise ModelError(path, f"cannot load model ({type(exc).__name__}: {exc})") from None
        T = np.array(T_world_obj, dtype=np.float64)
        if (p := pose_problem(T)) is not None:
            raise ValueError(p)
        return ObjectAnnotation(obj_id if obj_id is not None else self.next_id(), class_name,
                                stored, T, [])

    # -- changing (call these from undo commands only) -----------------------------------
    def insert_object(self, obj: ObjectAnnotation, index: int | None = None) -> None:
        """Add an object (a copy) at `index` (default: the end). Its class is added to
        `classes` when missing."""
        if self.has_object(obj.id):
            raise ValueError(f"object id {obj.id} already exists")
        if obj.class_name not in self._doc.classes:
            self._doc.classes.append(obj.class_name)
            self._emit("classes_changed")
        o = obj.copy()
        if index is None:
            self._doc.objects.append(o)
        else:
            self._doc.objects.insert(index, o)
        self._models.pop(o.id, None)
        self._model_errors.pop(o.id, None)
        self._emit("object_added", o.id)
        self._changed()

    def remove_object(self, obj_id: int) -> tuple[ObjectAnnotation, int]:
        """Remove an object; returns (the object, its index) so it can be put back."""
        i = self.index_of(obj_id)
        o = self._doc.objects.pop(i)
        self._hidden.discard(obj_id)
        self._models.pop(obj_id, None)
        self._model_errors.pop(obj_id, None)
        self._emit("object_removed", obj_id)
        self._changed()
        return o.copy(), i

    def set_classes(self, classes: list[str]) -> None:
        used = {o.class_name for o in self._doc.objects}
        if not used <= set(classes):
            raise ValueError(f"classes in use missing: {sorted(used - set(classes))}")
        self._doc.classes = list(classes)
        self._emit("classes_changed")
        self._changed()

    def set_pose(self, obj_id: int, T_world_obj: np.ndarray) -> None:
        """Set T_world_obj (4x4, stored as an exact float64 copy)."""
        T = np.array(T_world_obj, dtype=np.float64)
        if (p := pose_problem(T)) is not None:
            raise ValueError(f"object {obj_id}: {p}")
        o = self._doc.object(obj_id)
        if np.array_equal(o.T_world_obj, T):
            return
        o.T_world_obj = T
        self._emit("pose_changed", obj_id)
        self._changed()

    def set_keyframes(self, obj_id: int, frames: list[int]) -> None:
        ks = sorted({int(k) for k in frames})
        if any(k < 0 or k >= self.n_frames for k in ks):
            raise ValueError(f"keyframes outside 0..{self.n_frames - 1}: {ks}")
        o = self._doc.object(obj_id)
        if sorted(o.keyframes) == ks:
            return
        o.keyframes = ks
        self._emit("keyframes_changed", obj_id)
        self._changed()

    # -- view state ---------------------------------------------------------------------
    def is_visible(self, obj_id: int) -> bool:
        return obj_id not in self._hidden

    def set_visible(self, obj_id: int, visible: bool) -> None:
        """Show or hide an object in every view (not saved; the document stays clean)."""
        self._doc.object(obj_id)  # KeyError for an unknown id
        if visible == self.is_visible(obj_id):
            return
        (self._hidden.discard if visible else self._hidden.add)(obj_id)
        self._emit("visibility_changed", obj_id)

    # -- saving -------------------------------------------------------------------------
    @property
    def annotations_path(self) -> Path:
        return self.scene.paths.annotations

    def save(self) -> Path:
        """Write annotations.json atomically, stamped with trajectory_sha256.

        Raises BadInput when trajectory.txt changed on disk since it was loaded (the poses
        would silently refer to another world frame) or when writing fails; the previous
        annotations.json is then untouched and the document stays dirty. An unreadable
        annotations.json found at opening is first moved aside (`annotations.unreadable-*`).
        """
        path = self.annotations_path
        on_disk = self.scene.trajectory_sha256()
        if on_disk != self._trajectory_sha:
            raise BadInput(self.scene.paths.trajectory,
                           "changed on disk since the scene was opened; the poses refer to the "
                           "old trajectory. Reopen the scene (your edits are unsaved)")
        doc = self._doc.copy()
        doc.trajectory_sha256 = self._trajectory_sha
        try:
            if self.annotations_error is not None and path.is_file():
                stamp = time.strftime("%Y%m%d-%H%M%S")
                keep = path.with_name(f"annotations.unreadable-{stamp}.json")
                with atomic_path(keep) as tmp:
                    shutil.copyfile(path, tmp)
            doc.write(path)
        except OSError as exc:
            raise BadInput(path, f"could not save ({exc.strerror or exc}); "
                                 "the previous file is unchanged") from exc
        self.annotations_error = None
        self._doc.trajectory_sha256 = self._trajectory_sha
        self._saved_content = _content(self._doc)
        self._changed()
        self.discard_autosave()  # the saved file is now the newest state
        self._emit("saved", path)
        return path

    def replace_document(self, doc: AnnotationDocument) -> None:
        """Swap in another document (a recovered autosave): every object is removed and
        the new ones added, with events; the saved content stays, so the document is
        dirty unless it equals what is on disk. Not an undo step (the GUI clears its
        undo stack)."""
        for i in self.object_ids:
            self.remove_object(i)
        new = doc.copy()
        self._doc.classes = list(new.classes)
        self._emit("classes_changed")
        for o in new.objects:
            self.insert_object(o)
        self._changed()

    @property
    def autosave_path(self) -> Path:
        return self.scene.paths.autosave

    def autosave_offer(self) -> tuple[AnnotationDocument | None, str]:
        """(the autosaved document, why it is offered) when the side file should be offered
        for recovery: it is newer than annotations.json (or that file is missing or
        unreadable) and differs from what was opened; else (None, "")."""
        side = self.autosave_path
        if not side.is_file():
            return None, ""
        try:
            doc = AnnotationDocument.read(side)
        except BadInput:
            return None, ""
        if _content(doc) == self._saved_content and self.annotations_error is None:
            return None, ""
        path = self.annotations_path
        if self.annotations_error is not None:
            return doc, f"{path.name} cannot be read ({self.annotations_error})"
        if not path.is_file():
            return doc, f"there is no {path.name} yet"
        if side.stat().st_mtime_ns > path.stat().st_mtime_ns:
            return doc, f"the autosave is newer than {path.name}"
        return None, ""

    def discard_autosave(self) -> None:
        """Remove the side file (after a save, or when the user discards the changes)."""
        with contextlib.suppress(FileNotFoundError):
            self.autosave_path.unlink()

    def write_autosave(self) -> Path:
        """Write the current document to the scene's autosave side file (atomic)."""
        doc = self._doc.copy()
        doc.trajectory_sha256 = self._trajectory_sha
        atomic_write_text(self.scene.paths.autosave, doc.to_json())
        return self.scene.paths.autosave


__all__ = ["EVENTS", "DocumentModel"]
