"""Side panels: the objects list (add / delete / select / visibility / opacity) and the
numeric pose editor. They listen to the document model and emit what the user asks for;
the main window turns that into undo commands."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from labeller.annotate.document import DocumentModel
from labeller.core.poses import euler_xyz_deg_to_matrix, matrix_to_euler_xyz_deg


def colour_icon(rgb: tuple[int, int, int], size: int = 14) -> QIcon:
    pm = QPixmap(size, size)
    pm.fill(QColor(*rgb))
    return QIcon(pm)


class ObjectsPanel(QWidget):
    addRequested = Signal(str)  # class name
    deleteRequested = Signal(int)
    selectionRequested = Signal(object)  # obj id or None
    visibilityRequested = Signal(int, bool)
    opacityChanged = Signal(float)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.model: DocumentModel | None = None
        self._unsub: list = []
        lay = QVBoxLayout(self)
        add_row = QHBoxLayout()
        self.class_combo = QComboBox()
        self.class_combo.setToolTip("Class to add (models in the scene's models/ and --models DIR)")
        self.add_button = QPushButton("Add")
        self.add_button.setToolTip("Add an object of this class in front of the camera")
        add_row.addWidget(self.class_combo, 1)
        add_row.addWidget(self.add_button)
        lay.addLayout(add_row)
        self.list = QListWidget()
        self.list.setToolTip("Objects: tick to show, select to edit")
        lay.addWidget(self.list, 1)
        row = QHBoxLayout()
        self.delete_button = QPushButton("Delete")
        row.addWidget(self.delete_button)
        row.addStretch(1)
        lay.addLayout(row)
        op_row = QHBoxLayout()
        op_row.addWidget(QLabel("Opacity"))
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(45)
        op_row.addWidget(self.opacity, 1)
        lay.addLayout(op_row)
        self.pose_editor = PoseEditor()
        lay.addWidget(self.pose_editor)
        self._updating = False
        self.add_button.clicked.connect(self._add)
        self.delete_button.clicked.connect(self._delete)
        self.list.currentItemChanged.connect(self._current_changed)
        self.list.itemChanged.connect(self._item_changed)
        self.opacity.valueChanged.connect(lambda v: self.opacityChanged.emit(v / 100.0))

    def set_model(self, model: DocumentModel | None) -> None:
        for u in self._unsub:
            u()
        self._unsub = []
        self.model = model
        self.pose_editor.set_model(model)
        self.class_combo.clear()
        if model is not None:
            avail = model.available_classes()
            for name in sorted(avail):
                c = avail[name]
                self.class_combo.addItem(colour_icon(model.class_color(name)),
                                         f"{name}  ({c.source})", name)
            for ev in ("object_added", "object_removed", "visibility_changed",
                       "classes_changed"):
                self._unsub.append(model.subscribe(ev, lambda *a: self.refresh()))
        self.add_button.setEnabled(self.class_combo.count() > 0)
        self.refresh()

    def refresh(self) -> None:
        self._updating = True
        try:
            keep = self.selected_id()
            self.list.clear()
            if self.model is None:
                return
            for o in self.model.objects():
                err = self.model.model_error(o.id)
                text = f"#{o.id}  {o.class_name}" + ("   (model not loaded)" if err else "")
                it = QListWidgetItem(colour_icon(self.model.class_color(o.class_name)), text)
                it.setData(Qt.ItemDataRole.UserRole, o.id)
                it.setFlags(it.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                it.setCheckState(Qt.CheckState.Checked if self.model.is_visible(o.id)
                                 else Qt.CheckState.Unchecked)
                if err:
                    it.setToolTip(err)
                    it.setForeground(QColor(200, 60, 60))
                self.list.addItem(it)
                if o.id == keep:
                    self.list.setCurrentItem(it)
        finally:
            self._updating = False

    def selected_id(self) -> int | None:
        it = self.list.currentItem()
        return None if it is None else int(it.data(Qt.ItemDataRole.UserRole))

    def show_selection(self, obj_id: int | None) -> None:
        self._updating = True
        try:
            if obj_id is None:
                self.list.setCurrentRow(-1)
            for i in range(self.list.count()):
                it = self.list.item(i)
                if int(it.data(Qt.ItemDataRole.UserRole)) == obj_id:
                    self.list.setCurrentItem(it)
        finally:
            self._updating = False
        self.pose_editor.set_object(obj_id)

    def _add(self) -> None:
        name = self.class_combo.currentData()
        if name:
            self.addRequested.emit(str(name))

    def _delete(self) -> None:
        i = self.selected_id()
        if i is not None:
            self.deleteRequested.emit(i)

    def _current_changed(self, cur, _prev) -> None:
        if not self._updating:
            self.selectionRequested.emit(
                None if cur is None else int(cur.data(Qt.ItemDataRole.UserRole)))

    def _item_changed(self, item: QListWidgetItem) -> None:
        if not self._updating:
            self.visibilityRequested.emit(int(item.data(Qt.ItemDataRole.UserRole)),
                                          item.checkState() == Qt.CheckState.Checked)


class PoseEditor(QGroupBox):
    """Numeric entry of the selected object's T_world_obj: position in millimetres,
    rotation as angles (rx, ry, rz) in degrees with R = Rz @ Ry @ Rx (world frame).

    Editing a position field changes only the translation; editing an angle rebuilds
    the rotation from the three angles shown. Emits `poseEntered(obj_id, T_new)`."""

    poseEntered = Signal(int, object)

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Pose (world frame)", parent)
        self.model: DocumentModel | None = None
        self.obj_id: int | None = None
        self._unsub: Callable[[], None] | None = None
        form = QFormLayout(self)
        self.fields: dict[str, QDoubleSpinBox] = {}
        for key, label, rng, dec, suffix in (
            ("x", "x", 1e5, 1, " mm"), ("y", "y", 1e5, 1, " mm"), ("z", "z", 1e5, 1, " mm"),
            ("rx", "rot x", 180.0, 2, "°"), ("ry", "rot y", 90.0, 2, "°"),
            ("rz", "rot z", 180.0, 2, "°"),
        ):
            sb = QDoubleSpinBox()
            sb.setRange(-rng, rng)
            sb.setDecimals(dec)
            sb.setSuffix(suffix)
            sb.setKeyboardTracking(False)
            sb.setSingleStep(1.0)
            sb.editingFinished.connect(lambda k=key: self._entered(k))
            form.addRow(label, sb)
            self.fields[key] = sb
        self.set_object(None)

    def set_model(self, model: DocumentModel | None) -> None:
        if self._unsub:
            self._unsub()
            self._unsub = None
        self.model = model
        if model is not None:
            self._unsub = model.subscribe("pose_changed", self._pose_changed)
        self.set_object(None)

    def _pose_changed(self, obj_id: int) -> None:
        if obj_id == self.obj_id:
            self.show_pose()

    def set_object(self, obj_id: int | None) -> None:
        self.obj_id = obj_id
        for sb in self.fields.values():
            sb.setEnabled(obj_id is not None)
        self.show_pose()

    def _shown(self) -> dict[str, float]:
        return {k: sb.value() for k, sb in self.fields.items()}

    def show_pose(self) -> None:
        if self.model is None or self.obj_id is None or not self.model.has_object(self.obj_id):
            for sb in self.fields.values():
                sb.blockSignals(True)
                sb.setValue(0.0)
                sb.blockSignals(False)
            return
        T = self.model.pose(self.obj_id)
        vals = dict(zip(("x", "y", "z"), T[:3, 3] * 1000.0, strict=True))
        vals.update(zip(("rx", "ry", "rz"), matrix_to_euler_xyz_deg(T[:3, :3]), strict=True))
        for k, sb in self.fields.items():
            if sb.hasFocus() and sb.lineEdit().isModified():
                continue  # being typed into: Enter commits it, Esc shows the pose again
            sb.blockSignals(True)
            sb.setValue(float(vals[k]))
            sb.blockSignals(False)
        self._last_shown = self._shown()

    def _entered(self, key: str) -> None:
        if self.model is None or self.obj_id is None or not self.model.has_object(self.obj_id):
            return
        shown = self._shown()
        if shown[key] == getattr(self, "_last_shown", {}).get(key):
            return  # focus left the field without a change
        T = self.model.pose(self.obj_id)
        if key in ("x", "y", "z"):
            T[{"x": 0, "y": 1, "z": 2}[key], 3] = shown[key] / 1000.0
        else:
            T[:3, :3] = euler_xyz_deg_to_matrix([shown["rx"], shown["ry"], shown["rz"]])
        self._last_shown = shown
        self.poseEntered.emit(self.obj_id, np.array(T))
