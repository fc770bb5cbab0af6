"""The BOP toolkit (../shared/readers/bop_toolkit, unmodified) run from tests on our exports.

What the toolkit needs that this machine lacks, and how the tests give it (see
../shared/readers/README.md):

- It is not on PyPI: `toolkit()` puts its folder on sys.path (the test skips where the
  folder is absent). Its own dependencies (numpy, scipy, imageio, pypng) are installed.
- Its renderers need vispy/OpenGL (EGL), which do not install here. `RayCastRenderer`
  implements the toolkit's `Renderer` interface (`add_object`, `render_object` ->
  {"depth": (H, W) mm}) by ray casting at pixel centres with Open3D, from the model file
  as the toolkit's own `inout.load_ply` reads it; `create_renderer` answers with it.
- Its scripts take their parameters from a `p = {...}` dict at the top and argv:
  `run_script` runs one in this process as `python scripts/NAME args` would, after
  `p.update(overrides)`. `eval_bop19_pose` starts `eval_calc_errors` / `eval_calc_scores`
  with `subprocess.call(["python", script, ...])`; those calls run the same way here.
- `dataset_params` describes the published datasets only (ycbv: test scenes 48..59,
  640 x 480). For our export, named `ycbv` (its obj ids are the YCB-V ids), the split's
  scene ids are the scene folders present, the image size is the dataset's camera.json
  and the object ids are the models_info.json keys of the models folder the toolkit
  reads (models/, or models_eval/ for the evaluation).
"""

from __future__ import annotations

import ast
import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

TOOLKIT = Path(__file__).resolve().parents[1].parent / "shared" / "readers" / "bop_toolkit"
SCRIPTS = TOOLKIT / "scripts"


def toolkit() -> ModuleType:
    """bop_toolkit_lib, importable (the calling test skips when the folder is absent)."""
    if not (TOOLKIT / "bop_toolkit_lib").is_dir():
        pytest.skip(f"the BOP toolkit is not at {TOOLKIT}")
    if str(TOOLKIT) not in sys.path:
        sys.path.insert(0, str(TOOLKIT))
    import bop_toolkit_lib

    return bop_toolkit_lib


def make_ray_cast_renderer(width: int, height: int, *_: Any, **__: Any) -> Any:
    """A toolkit Renderer (depth only) that ray-casts with Open3D; signature of the
    toolkit's `renderer.create_renderer(width, height, renderer_type, mode, ...)`."""
    toolkit()
    import open3d as o3d
    from bop_toolkit_lib import inout
    from bop_toolkit_lib.rendering import renderer

    class RayCastRenderer(renderer.Renderer):
        """Depth in mm along z at pixel centres (u, v integer), 0 where the model is not hit."""

        def __init__(self) -> None:
            super().__init__(width, height)
            self.models: dict[int, tuple[np.ndarray, np.ndarray]] = {}

        def add_object(self, obj_id: int, model_path: str, **kwargs: Any) -> None:
            m = inout.load_ply(model_path)
            self.models[obj_id] = (np.asarray(m["pts"], np.float64),
                                   np.asarray(m["faces"], np.uint32))

        def remove_object(self, obj_id: int) -> None:
            del self.models[obj_id]

        def render_object(self, obj_id: int, R: Any, t: Any, fx: float, fy: float, cx: float,
                          cy: float) -> dict[str, np.ndarray]:
            pts, faces = self.models[obj_id]
            p = pts @ np.asarray(R, np.float64).reshape(3, 3).T + np.asarray(t, np.float64).reshape(1, 3)
            depth = np.zeros((self.height, self.width), np.float32)
            x0, y0, x1, y1 = 0, 0, self.width - 1, self.height - 1
            if np.all(p[:, 2] > 0):  # rays outside the projected points' box cannot hit
                u = fx * p[:, 0] / p[:, 2] + cx
                v = fy * p[:, 1] / p[:, 2] + cy
                x0, x1 = max(int(np.floor(u.min())), 0), min(int(np.ceil(u.max())), self.width - 1)
                y0, y1 = max(int(np.floor(v.min())), 0), min(int(np.ceil(v.max())), self.height - 1)
                if x1 < x0 or y1 < y0:
                    return {"depth": depth}
            scene = o3d.t.geometry.RaycastingScene()
            scene.add_triangles(o3d.core.Tensor(p.astype(np.float32)), o3d.core.Tensor(faces))
            xs = np.arange(x0, x1 + 1, dtype=np.float64)
            ys = np.arange(y0, y1 + 1, dtype=np.float64)
            rays = np.zeros((len(ys), len(xs), 6), np.float32)
            rays[..., 3] = ((xs - cx) / fx)[None, :]
            rays[..., 4] = ((ys - cy) / fy)[:, None]
            rays[..., 5] = 1.0  # unit z: the hit distance is the depth
            t_hit = scene.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy()
            depth[y0:y1 + 1, x0:x1 + 1] = np.where(np.isfinite(t_hit), t_hit, 0.0)
            return {"depth": depth}

    return RayCastRenderer()


def run_script(name: str, args: Sequence[str] = (), overrides: dict | None = None) -> dict:
    """Run the toolkit's scripts/NAME in this process as `python scripts/NAME ARGS` would,
    with `p.update(overrides)` right after its parameter dict. Returns its globals."""
    path = SCRIPTS / name
    tree = ast.parse(path.read_text(), str(path))
    for i, node in enumerate(tree.body):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "p"
                                                for t in node.targets):
            tree.body.insert(i + 1, ast.parse("p.update(__overrides__)").body[0])
            break
    else:
        raise AssertionError(f"{path}: no top-level parameter dict p")
    code = compile(ast.fix_missing_locations(tree), str(path), "exec")
    namespace = {"__name__": "__main__", "__file__": str(path),
                 "__overrides__": dict(overrides or {})}
    argv = sys.argv
    sys.argv = [str(path), *args]
    try:
        exec(code, namespace)
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise AssertionError(f"{name} {' '.join(args)} exited with {exc.code}") from exc
    finally:
        sys.argv = argv
    return namespace


def _call_script(cmd: Sequence[str], *args: Any, **kwargs: Any) -> int:
    """subprocess.call for `python <toolkit script> ...`: run it in this process."""
    if len(cmd) >= 2 and Path(cmd[1]).parent == SCRIPTS:
        run_script(Path(cmd[1]).name, list(cmd[2:]))
        return 0
    return subprocess.call(cmd, *args, **kwargs)  # pragma: no cover - nothing else is called


@contextlib.contextmanager
def toolkit_on(datasets_path: Path, results_path: Path | None = None,
               eval_path: Path | None = None) -> Iterator[ModuleType]:
    """The toolkit set up for the datasets under `datasets_path` (module doc): renderer,
    dataset parameters, in-process scripts, config paths. Undone on exit."""
    toolkit()
    from bop_toolkit_lib import config, dataset_params, inout
    from bop_toolkit_lib.rendering import renderer

    get_split, get_model = dataset_params.get_split_params, dataset_params.get_model_params

    def split_params(path: str, name: str, split: str, split_type: str | None = None) -> dict:
        p = get_split(path, name, split, split_type)
        cam = json.loads((Path(p["base_path"]) / "camera.json").read_text())
        p["im_size"] = (int(cam["width"]), int(cam["height"]))
        split_dir = Path(p["split_path"])
        p["scene_ids"] = sorted(int(d.name) for d in split_dir.iterdir() if d.is_dir())
        return p

    def model_params(path: str, name: str, model_type: str | None = None) -> dict:
        p = get_model(path, name, model_type)
        p["obj_ids"] = sorted(inout.load_json(p["models_info_path"], keys_to_int=True))
        return p

    saved = [(dataset_params, "get_split_params", get_split),
             (dataset_params, "get_model_params", get_model),
             (renderer, "create_renderer", renderer.create_renderer),
             (subprocess, "call", subprocess.call),
             (config, "datasets_path", config.datasets_path),
             (config, "results_path", config.results_path),
             (config, "eval_path", config.eval_path)]
    dataset_params.get_split_params = split_params
    dataset_params.get_model_params = model_params
    renderer.create_renderer = make_ray_cast_renderer
    subprocess.call = _call_script  # type: ignore[assignment]
    config.datasets_path = str(datasets_path)
    if results_path is not None:
        config.results_path = str(results_path)
    if eval_path is not None:
        config.eval_path = str(eval_path)
    try:
        yield sys.modules["bop_toolkit_lib"]
    finally:
        for mod, attr, value in saved:
            setattr(mod, attr, value)


def results_csv(rows: Sequence[tuple[int, int, int, np.ndarray, float]]) -> str:
    """A bop19 results file: (scene_id, im_id, obj_id, T_cam_obj (4, 4) with t in mm,
    time s) per estimate, score 1 (the format of the toolkit's docs/bop_challenge_2019)."""
    lines = ["scene_id,im_id,obj_id,score,R,t,time"]
    for scene_id, im_id, obj_id, T, seconds in rows:
        R = " ".join(f"{v:.9f}" for v in T[:3, :3].reshape(-1))
        t = " ".join(f"{v:.6f}" for v in T[:3, 3])
        lines.append(f"{scene_id},{im_id},{obj_id},1.0,{R},{t},{seconds:.3f}")
    return "\n".join(lines) + "\n"
