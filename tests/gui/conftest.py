"""Fixtures for the GUI tests: small synthetic scenes, a main window, captured message boxes.

The GUI runs offscreen (QT_QPA_PLATFORM=offscreen, set in tests/conftest.py). Message
boxes never block: `dialogs` records them and answers with a preset button.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from labeller.synth import SynthConfig, run

SYNTH_FRAMES = 10


@pytest.fixture(scope="session")
def synth_master(tmp_path_factory) -> Path:
    """A 10-frame 320x240 synthetic scene with trajectory.txt and the ground-truth
    annotations.json at the top level (do not modify: copy it with `scene_copy`)."""
    out = tmp_path_factory.mktemp("gui_synth") / "scene"
    run(SynthConfig(out, frames=SYNTH_FRAMES, seed=3, width=320, height=240,
                    with_annotations=True))
    return out


@pytest.fixture
def scene_copy(synth_master, tmp_path):
    """make(annotations=True, trajectory=True) -> a private copy of the synthetic scene."""

    def make(annotations: bool = True, trajectory: bool = True, name: str = "scene") -> Path:
        dst = tmp_path / name
        shutil.copytree(synth_master, dst)
        if not annotations:
            (dst / "annotations.json").unlink()
        if not trajectory:
            (dst / "trajectory.txt").unlink()
        return dst

    return make


class Dialogs:
    """Records QMessageBox calls as (kind, title, text); `answer` is what question() returns."""

    def __init__(self):
        self.calls: list[tuple[str, str, str]] = []
        self.answer = None

    def kinds(self) -> list[str]:
        return [k for k, _, _ in self.calls]

    def text(self) -> str:
        return "\n".join(f"{k}: {t}: {x}" for k, t, x in self.calls)


@pytest.fixture
def dialogs(monkeypatch) -> Dialogs:
    from PySide6.QtWidgets import QMessageBox

    d = Dialogs()
    d.answer = QMessageBox.Discard

    def record(kind):
        def f(parent, title, text, *a, **k):
            d.calls.append((kind, title, text))
            return d.answer if kind == "question" else QMessageBox.Ok
        return f

    for kind in ("critical", "warning", "information", "question"):
        monkeypatch.setattr(QMessageBox, kind, staticmethod(record(kind)))
    return d


@pytest.fixture
def make_window(qtbot, dialogs, monkeypatch, tmp_path):
    """make(models_dir=None) -> a shown MainWindow (recent scenes kept under tmp_path)."""
    from labeller.gui.app import MainWindow

    monkeypatch.setenv("LABELLER_CONFIG_DIR", str(tmp_path / "config"))
    windows = []

    def make(models_dir=None) -> MainWindow:
        w = MainWindow(models_dir)
        qtbot.addWidget(w)
        # shortcuts (Ctrl+S, M, P, ...) fire only in the active window
        with qtbot.waitActive(w):
            w.show()
            w.activateWindow()
        windows.append(w)
        return w

    yield make
    for w in windows:
        w.close_scene()


def wait_render(qtbot, window, timeout: int = 10000) -> None:
    """Wait until the newest overlay request has been drawn."""
    qtbot.waitUntil(window.render_idle, timeout=timeout)
