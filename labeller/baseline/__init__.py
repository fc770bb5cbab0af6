"""Baselines that check a PROPS classification dataset: kNN, linear SVM and softmax.

Modules: `data` (restricted unpickler, PROPS loader, preprocessing), `knn` (chunked
distances, k-NN estimator, cross-validation), `linear` (losses with analytic
gradients, torch.optim training, hyperparameter search), `report` (metrics, plots,
table, checkpoints), `runner` (`BaselineConfig`, `run`: the `labeller baseline` stage).

Importing this package is cheap: torch and matplotlib load only when used.
"""

from labeller.baseline.runner import BaselineConfig, run


def format_table(report: dict) -> str:
    """The short text table of a report dict returned by `run`."""
    from labeller.baseline.report import format_table as _fmt

    return _fmt(report)


__all__ = ["BaselineConfig", "run", "format_table"]
