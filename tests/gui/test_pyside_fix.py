"""The app survives long sessions: PySide6 6.12.0 on CPython 3.11 loses a reference to
None on every Python override of a Qt virtual (paintEvent, QRunnable.run, undo/redo...)
and aborts after ~5,000 of them unless gui._pyside_fix is in place."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import ROOT

CODE = """
import os, sys
os.environ["QT_QPA_PLATFORM"] = "offscreen"
import labeller.gui.app  # installs the guard where needed
from PySide6.QtGui import QUndoCommand, QUndoStack
from PySide6.QtWidgets import QApplication, QWidget
app = QApplication([])
class W(QWidget):
    def paintEvent(self, e):
        pass
class C(QUndoCommand):
    def redo(self):
        pass
    def undo(self):
        pass
w = W()
w.show()
st = QUndoStack()
st.push(C("x"))
for i in range(6000):
    w.repaint()
    st.undo()
    st.redo()
print("survived")
"""


def test_many_virtual_calls_do_not_abort_the_interpreter():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "survived" in out.stdout
