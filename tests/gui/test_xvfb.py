"""The app as a real X11 window (under xvfb-run): opens a synthetic scene, draws the
objects, grabs the screen and quits (tests/gui/screenshot_app.py)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from labeller.core.fileio import read_image
from tests.helpers import ROOT


@pytest.mark.slow
def test_real_window_under_xvfb(synth_master, tmp_path):
    import ctypes.util

    from labeller.cli.gui_stage import XCB_LIBS

    if shutil.which("xvfb-run") is None:
        pytest.skip("xvfb-run is not installed (apt-get install xvfb)")
    missing = [pkg for lib, pkg in XCB_LIBS.items() if ctypes.util.find_library(lib) is None]
    if missing:
        pytest.skip(f"Qt's X11 plugin needs {' '.join(missing)} (apt-get install them)")
    scene = tmp_path / "scene"
    shutil.copytree(synth_master, scene)
    shot = tmp_path / "screen.png"
    env = {k: v for k, v in os.environ.items()
           if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    env.update(LABELLER_CONFIG_DIR=str(tmp_path / "config"), PYTHONPATH=str(ROOT))
    out = subprocess.run(
        ["xvfb-run", "-a", "-s", "-screen 0 1400x900x24", sys.executable, "-m",
         "tests.gui.screenshot_app", str(scene), "--out", str(shot), "--select", "1"],
        env=env, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "screenshot saved" in out.stderr
    img = read_image(shot)
    assert img.shape == (900, 1400, 3)
    # the window (1280x800 at the top-left) shows a picture, not an empty screen
    win = img[:800, :1280]
    assert win.std() > 20 and (img[850:, :] == img[899, 0]).all()
    drawn = re.search(r"objects drawn: ([\d, ]+)", out.stderr)
    assert drawn and len(drawn.group(1).split(",")) >= 3, out.stderr
    # closing a clean document saved nothing
    assert (scene / "annotations.json").read_bytes() == \
        (synth_master / "annotations.json").read_bytes()
