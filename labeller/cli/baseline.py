"""Train kNN, linear SVM and softmax baselines on a PROPS classification dataset.

Reads DIR (the Progress-Objects-Sample folder holding meta.pkl, or its parent),
preprocesses as the course does (pixels / 255, minus the per-channel training mean,
channel-first flattened to 3,072), chooses k by 5-fold cross-validation and the linear
models' learning rate and regularisation on a held-out validation split, evaluates the
chosen models once on the test split and writes report.json, confusion and loss plots
and checkpoints to --out (default: baseline/ beside Progress-Objects-Sample/).

With --predict CHECKPOINT, classifies PNG/JPEG images or the test split of PROPS
datasets with a saved linear model instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from labeller.baseline.config import BaselineConfig
from labeller.cli.options import add_config_arguments, config_from_args
from labeller.core.config import cli_option
from labeller.core.errors import BadInput

EXAMPLE = """\
examples:
  labeller baseline datasets/out/props --model all
  labeller baseline datasets/out/props/Progress-Objects-Sample --model svm \\
      --optimizer adam --search grid --search-budget 16 --out /tmp/report
  labeller baseline datasets/out/props --model knn --num-train 5000 --num-test 1000 --device cuda
  labeller baseline --predict datasets/out/props/baseline/softmax.pt crop1.png crop2.png
"""

# BaselineConfig.k_choices as one comma list on the command line (the CLI parses it).
K_CHOICES_DEFAULT = ",".join(str(k) for k in BaselineConfig.k_choices)


def _add_fields(container: argparse.ArgumentParser | argparse._ArgumentGroup, *names: str) -> None:
    """The options of the BaselineConfig fields `names`, in the dataclass's order."""
    options = {f.name for f in dataclasses.fields(BaselineConfig) if cli_option(f) is not None}
    unknown = set(names) - options
    assert not unknown, unknown
    add_config_arguments(container, BaselineConfig, exclude=options - set(names))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="DIR",
                   help="PROPS dataset (Progress-Objects-Sample or its parent); with --predict: "
                        "images and/or datasets to classify")
    _add_fields(p, "model", "device", "out", "num_train", "num_test", "seed", "val_fraction")
    g = p.add_argument_group("kNN")
    _add_fields(g, "k")
    g.add_argument("--k-choices", default=K_CHOICES_DEFAULT,
                   help="k values cross-validation tries (default: %(default)s)")
    _add_fields(g, "folds", "knn_precision")
    g = p.add_argument_group("linear models (svm, softmax)")
    _add_fields(g, "optimizer", "search", "search_budget", "search_iters", "lr", "reg", "reg_type",
                "bias", "num_iters", "batch_size", "compare_optimizers")
    g = p.add_argument_group("prediction")
    g.add_argument("--predict", metavar="CHECKPOINT", help="classify the given images / datasets with a saved svm.pt or softmax.pt")
    _add_fields(p, "progress")
    p.add_argument("--json", action="store_true", help="print the report (or predictions) as JSON instead of a table")


def _parse_k_choices(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise BadInput("--k-choices", f"'{text}' is not a comma-separated list of integers") from None
    if not ks or min(ks) < 1:
        raise BadInput("--k-choices", f"'{text}' must list positive integers")
    return ks


def baseline_config(args: argparse.Namespace) -> BaselineConfig:
    """The BaselineConfig of a parsed `labeller baseline DIR ...` (not --predict)."""
    if len(args.paths) != 1:
        raise BadInput("DIR", f"give exactly one dataset folder (got {len(args.paths)}; several paths only with --predict)")
    return config_from_args(BaselineConfig, args, data_dir=args.paths[0],
                            k_choices=_parse_k_choices(args.k_choices))


def main(args: argparse.Namespace) -> int:
    from labeller.baseline import format_table, run

    if args.predict:
        from labeller.baseline.predict import predict_paths

        results = predict_paths(args.predict, args.paths, args.device)
        if args.json:
            print(json.dumps(results, indent=2))
            return 0
        for r in results:
            if "accuracy" in r:
                print(f"{r['path']}: test accuracy {100 * r['accuracy']:.1f}% on {r['n']} images")
            else:
                print(f"{r['path']}\t{r['class']}\t{r['score']:.3f}")
        return 0
    report = run(baseline_config(args))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_table(report))
    return 0
