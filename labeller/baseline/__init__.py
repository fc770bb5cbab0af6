"""Baselines that check a PROPS classification dataset: kNN, linear SVM and softmax.

Modules: `config` (`BaselineConfig` and the names its fields take), `runner` (`run`:
the `labeller baseline` stage), `data` (the PROPS loader), `preprocess` (subsets, the
scene-grouped validation split, features), `device` (`resolve_device`), `memory`
(block sizes from the free memory), `precision` (which arithmetic the kNN distances
use: `choose_precision`), `knn_int8` (the exact int8 GEMM and its self-test),
`neighbours` (the block-wise search, exact on 8-bit pixels in every precision), `knn`
(the k-NN estimator and vote), `cv` (one-pass, scene-grouped cross-validation of k),
`losses` (SVM and softmax losses with analytic gradients), `linear` (the
`torch.optim`-trained estimator, minibatch or full-batch L-BFGS), `search`
(learning-rate / regularisation search), `report` (metrics, plots, table,
checkpoints), `predict` (`--predict`).

Importing this package is cheap: torch and matplotlib load only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labeller.core.lazy import lazy_exports

if TYPE_CHECKING:
    from labeller.baseline.config import BaselineConfig
    from labeller.baseline.runner import run

# Public name -> the module that defines it, imported on first use (labeller.core.lazy).
__getattr__ = lazy_exports(__name__, {"BaselineConfig": "config", "run": "runner"})


def format_table(report: dict) -> str:
    """The short text table of a report dict returned by `run`."""
    from labeller.baseline.report import format_table as _fmt

    return _fmt(report)


__all__ = ["BaselineConfig", "run", "format_table"]
