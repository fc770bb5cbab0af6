"""Fixtures for the baseline tests: small synthetic PROPS datasets written to disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labeller.baseline.data import write_props
from labeller.core.classes import PROPS_CLASS_NAMES, PROPS_CLASSES


def synthetic_images(label: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 32, 32, 3) uint8: the class colour in a centred square on a grey background,
    with noise, a random shift and brightness, so the classes are learnable but not
    trivially identical."""
    color = np.array(PROPS_CLASSES[label].color_rgb, float)
    out = np.empty((n, 32, 32, 3), np.uint8)
    for i in range(n):
        img = np.full((32, 32, 3), 110.0) + rng.normal(0, 18, (32, 32, 3))
        dx, dy = rng.integers(-4, 5, 2)
        s = 8 + label % 4  # size differs a little by class too
        img[16 - s + dy : 16 + s + dy, 16 - s + dx : 16 + s + dx] = color * rng.uniform(0.8, 1.1) + rng.normal(0, 18, (2 * s, 2 * s, 3))
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def make_props(root: Path, train_per_class: int = 12, test_per_class: int = 4, seed: int = 0,
               scenes_per_class: int = 2) -> Path:
    """Write a synthetic PROPS dataset under `root` (the parent of
    Progress-Objects-Sample); the last scene of each class is the test split."""
    rng = np.random.default_rng(seed)
    scenes, test = {}, []
    for c, name in enumerate(PROPS_CLASS_NAMES):
        per = np.array_split(np.arange(train_per_class), scenes_per_class - 1)
        for k, part in enumerate(per, start=1):
            scenes[f"{name}_{k}"] = (synthetic_images(c, len(part), rng), [c] * len(part))
        k = scenes_per_class
        scenes[f"{name}_{k}"] = (synthetic_images(c, test_per_class, rng), [c] * test_per_class)
        test.append(f"{name}_{k}")
    write_props(root, scenes, test)
    return root


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """These problems are tiny: one intra-op thread avoids OpenMP synchronisation,
    which costs milliseconds per op when the machine is busy."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def small_props(tmp_path) -> Path:
    """10 classes × (12 train + 4 test) synthetic images; returns the parent folder."""
    return make_props(tmp_path / "props")
