"""The DeepRob course's own PROPS loaders (../shared/readers/deeprob, unmodified), made
importable here.

They import torchvision, whose PyPI wheel is built against CUDA torch and cannot
install beside the CPU torch, and the course's `rob599` helper package, which is not
in ../shared. `install(monkeypatch)` puts small stand-ins for exactly the pure-Python
parts they use into `sys.modules`:

- torchvision.datasets.utils: `check_integrity` (md5 of a file, as torchvision) and
  `download_and_extract_archive` (refuses: tests never download);
- torchvision.datasets.vision.VisionDataset: root / transform / target_transform;
- torchvision.transforms: Resize (shorter edge, bilinear), CenterCrop, ToTensor,
  Normalize, Compose, with torchvision's arithmetic;
- torchvision.utils.make_grid (torchvision's layout: padding 2, value 0);
- rob599: the course's `ProgressObjectsDataset` (the real file from P1_rob599),
  `reset_seed`, `tensor_to_image` (as the course writes them), `Visualize` (loads each
  model with Open3D and exposes its vertices, which is all PROPSPoseDataset reads from
  it; no rendering), `chromatic_transform` and `add_noise` (the course's HLS jitter and
  Gaussian noise).

`load(name)` then imports one loader file by path. One more stand-in, for NumPy rather
than torchvision: `PROPSPoseDataset.__getitem__` calls `int()` on one-element arrays (the
projected centre, for a debug drawing), which NumPy 1.x converted (the course runs on it)
and NumPy >= 2.4 refuses; that module gets an `int` that converts them as NumPy 1.x did.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import random
import sys
import types
from pathlib import Path

import numpy as np

DEEPROB = Path(__file__).resolve().parents[1].parent / "shared" / "readers" / "deeprob"


# --- torchvision stand-ins ------------------------------------------------------------
def check_integrity(fpath: str, md5: str | None = None) -> bool:
    if not os.path.isfile(fpath):
        return False
    if md5 is None:
        return True
    h = hashlib.md5(usedforsecurity=False)
    with open(fpath, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest() == md5


def download_and_extract_archive(url, *args, **kwargs):
    raise RuntimeError(f"tests never download ({url})")


class VisionDataset:
    def __init__(self, root, transforms=None, transform=None, target_transform=None):
        self.root = os.path.expanduser(root) if isinstance(root, str) else root
        self.transforms = transforms
        self.transform = transform
        self.target_transform = target_transform


class Compose:
    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x


class Resize:
    """int size: the shorter edge becomes `size`, the longer int(size * long / short)."""

    def __init__(self, size):
        self.size = size

    def __call__(self, img):
        from PIL import Image

        w, h = img.size
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = self.size, int(self.size * long / short)
        new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
        if (new_w, new_h) == (w, h):
            return img
        return img.resize((new_w, new_h), Image.BILINEAR)


class CenterCrop:
    def __init__(self, size):
        self.size = size

    def __call__(self, img):
        w, h = img.size
        top = int(round((h - self.size) / 2.0))
        left = int(round((w - self.size) / 2.0))
        return img.crop((left, top, left + self.size, top + self.size))


class ToTensor:
    def __call__(self, img):
        import torch

        arr = np.array(img, np.uint8, copy=True)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        return torch.from_numpy(arr).permute(2, 0, 1).contiguous().float().div(255)


class Normalize:
    def __init__(self, mean, std):
        self.mean, self.std = mean, std

    def __call__(self, t):
        import torch

        mean = torch.as_tensor(self.mean, dtype=t.dtype)[:, None, None]
        std = torch.as_tensor(self.std, dtype=t.dtype)[:, None, None]
        return (t - mean) / std


def make_grid(tensors, nrow: int = 8, padding: int = 2, pad_value: float = 0.0):
    import torch

    if isinstance(tensors, list):
        tensors = torch.stack(tensors, dim=0)
    nmaps = tensors.size(0)
    xmaps = min(nrow, nmaps)
    ymaps = int(math.ceil(float(nmaps) / xmaps))
    height, width = int(tensors.size(2) + padding), int(tensors.size(3) + padding)
    grid = tensors.new_full((tensors.size(1), height * ymaps + padding,
                             width * xmaps + padding), pad_value)
    k = 0
    for y in range(ymaps):
        for x in range(xmaps):
            if k >= nmaps:
                break
            grid.narrow(1, y * height + padding, height - padding).narrow(
                2, x * width + padding, width - padding).copy_(tensors[k])
            k += 1
    return grid


# --- rob599 stand-ins (the course's helpers) -------------------------------------------
def reset_seed(number: int) -> None:
    import torch

    random.seed(number)
    torch.manual_seed(number)


def tensor_to_image(tensor):
    import torch

    tensor = tensor.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0)
    return tensor.to("cpu", torch.uint8).numpy()


class Visualize:
    """What PROPSPoseDataset reads of the course's renderer: objnode[label]['mesh'].vertices
    of every model (it fails, as trimesh would, on a missing or empty model file)."""

    def __init__(self, object_dict, cam_intrinsic, resolution):
        import open3d as o3d

        self.objnode = {}
        for label, (name, path) in object_dict.items():
            if not os.path.isfile(path):
                raise FileNotFoundError(path)
            mesh = o3d.io.read_triangle_mesh(path)
            vertices = np.asarray(mesh.vertices)
            if len(vertices) == 0:
                raise ValueError(f"{path}: no vertices")
            self.objnode[label] = {"name": name, "mesh": types.SimpleNamespace(vertices=vertices)}


def chromatic_transform(im):
    """Random hue, lightness and saturation shift (HLS), as the course's augmentation."""
    import cv2

    d_h = (np.random.rand(1) - 0.5) * 0.1 * 180
    d_l = (np.random.rand(1) - 0.5) * 0.2 * 256
    d_s = (np.random.rand(1) - 0.5) * 0.2 * 256
    hue, light, sat = cv2.split(cv2.cvtColor(im, cv2.COLOR_BGR2HLS))
    hls = cv2.merge(((hue + d_h) % 180, np.clip(light + d_l, 0, 255), np.clip(sat + d_s, 0, 255)))
    return cv2.cvtColor(hls.astype(np.uint8), cv2.COLOR_HLS2BGR)


def add_noise(image, level: float = 0.1):
    """Gaussian noise of a random level, as the course's augmentation."""
    row, col, ch = image.shape
    sigma = np.random.rand(1) * random.uniform(0, level) * 256
    gauss = np.repeat((sigma * np.random.randn(row, col))[:, :, None], ch, axis=2)
    return np.clip(image + gauss, 0, 255).astype(np.uint8)


# --- installing and loading ------------------------------------------------------------
def _skip_without_readers() -> None:
    if not DEEPROB.is_dir():
        import pytest

        pytest.skip(f"the DeepRob loaders are not at {DEEPROB} (../shared/readers/deeprob)")


def _module(name: str, **attrs) -> types.ModuleType:
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    return m


def _load_file(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def install(monkeypatch) -> None:
    """The stand-ins into sys.modules for this test (undone by monkeypatch)."""
    import matplotlib

    _skip_without_readers()

    matplotlib.use("Agg")  # the P1 example grid calls plt.show()
    datasets_utils = _module("torchvision.datasets.utils", check_integrity=check_integrity,
                             download_and_extract_archive=download_and_extract_archive)
    datasets_vision = _module("torchvision.datasets.vision", VisionDataset=VisionDataset)
    datasets = _module("torchvision.datasets", utils=datasets_utils, vision=datasets_vision)
    transforms = _module("torchvision.transforms", Compose=Compose, Resize=Resize,
                         CenterCrop=CenterCrop, ToTensor=ToTensor, Normalize=Normalize)
    utils = _module("torchvision.utils", make_grid=make_grid)
    tv = _module("torchvision", datasets=datasets, transforms=transforms, utils=utils)
    for name, mod in {"torchvision": tv, "torchvision.datasets": datasets,
                      "torchvision.datasets.utils": datasets_utils,
                      "torchvision.datasets.vision": datasets_vision,
                      "torchvision.transforms": transforms, "torchvision.utils": utils}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    rob599 = _module("rob599", reset_seed=reset_seed, tensor_to_image=tensor_to_image,
                     Visualize=Visualize, chromatic_transform=chromatic_transform,
                     add_noise=add_noise)
    monkeypatch.setitem(sys.modules, "rob599", rob599)
    # the real P1 dataset class, as `rob599.ProgressObjectsDataset`
    monkeypatch.delitem(sys.modules, "deeprob_ProgressObjectsDataset", raising=False)
    pod = _load_file("deeprob_ProgressObjectsDataset", DEEPROB / "P1_rob599" / "ProgressObjectsDataset.py")
    rob599.ProgressObjectsDataset = pod.ProgressObjectsDataset


def numpy1_int(x=0, *args):
    """int() as under NumPy 1.x: a one-element array converts to its element."""
    if isinstance(x, np.ndarray) and x.size == 1 and not args:
        return int(x.item())
    return int(x, *args)


def load(name: str) -> types.ModuleType:
    """Import one loader file: 'PROPSClassificationDataset', 'PROPSPoseDataset',
    'PROPSDetectionDataset' or 'P1_rob599/data' (after `install`)."""
    _skip_without_readers()
    path = DEEPROB / f"{name}.py"
    mod = _load_file("deeprob_" + name.replace("/", "_"), path)
    if name == "PROPSPoseDataset":
        mod.int = numpy1_int  # type: ignore[attr-defined]
    return mod
