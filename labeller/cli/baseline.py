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
import json

from labeller.baseline.runner import MODELS, BaselineConfig, run  # noqa: F401 (re-exported)
from labeller.core.errors import BadInput

EXAMPLE = """\
examples:
  labeller baseline datasets/out/props --model all
  labeller baseline datasets/out/props/Progress-Objects-Sample --model svm \\
      --optimizer adam --search grid --search-budget 16 --out /tmp/report
  labeller baseline datasets/out/props --model knn --num-train 5000 --num-test 1000 --device cuda
  labeller baseline --predict datasets/out/props/baseline/softmax.pt crop1.png crop2.png
"""

OPTIMIZER_CHOICES = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")


def format_table(report: dict) -> str:
    """The short text table `labeller baseline` prints (one row per model)."""
    from labeller.baseline.report import format_table as _fmt

    return _fmt(report)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="DIR",
                   help="PROPS dataset (Progress-Objects-Sample or its parent); with --predict: "
                        "images and/or datasets to classify")
    p.add_argument("--model", default="all", help="knn, svm, softmax, all, or a comma list (default: all)")
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu or cuda (default: auto)")
    p.add_argument("--out", metavar="REPORT_DIR", help="report folder (default: baseline/ beside Progress-Objects-Sample/)")
    p.add_argument("--num-train", type=int, metavar="N", help="use N training images in total (train + validation; stratified, seeded)")
    p.add_argument("--num-test", type=int, metavar="N", help="use N test images (stratified, seeded)")
    p.add_argument("--seed", type=int, default=0, help="seed for subsets, splits, folds, search and training (default: 0)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="held-out part of the training images for validation (default: 0.2)")
    g = p.add_argument_group("kNN")
    g.add_argument("--k", type=int, help="use this k instead of choosing it by cross-validation")
    g.add_argument("--k-choices", default="1,3,5,8,10,12,15,20,50,100", help="k values cross-validation tries (default: %(default)s)")
    g.add_argument("--folds", type=int, default=5, help="cross-validation folds (default: 5)")
    g.add_argument("--knn-method", default="float32", choices=("float32", "int8"),
                   help="distances by float32 GEMM (any device) or exactly in int8 on the raw pixels (CPU) (default: float32)")
    g = p.add_argument_group("linear models (svm, softmax)")
    g.add_argument("--optimizer", default="sgd", choices=OPTIMIZER_CHOICES, help="torch.optim optimiser (default: sgd)")
    g.add_argument("--search", default="random", choices=("grid", "random"), help="learning-rate / regularisation search (default: random)")
    g.add_argument("--search-budget", type=int, default=12, help="trials in the search (default: 12)")
    g.add_argument("--search-iters", type=int, default=500, help="iterations per search trial (default: 500)")
    g.add_argument("--lr", type=float, help="fix the learning rate (with --reg: no search)")
    g.add_argument("--reg", type=float, help="fix the regularisation strength (with --lr: no search)")
    g.add_argument("--reg-type", default="l2", choices=("l2", "l1"), help="penalty reg*sum(W^2) or reg*sum(|W|) (default: l2)")
    g.add_argument("--bias", default="trick", choices=("trick", "separate"), help="bias trick (a constant-1 feature) or a separate b (default: trick)")
    g.add_argument("--num-iters", type=int, default=1500, help="iterations of the final training (default: 1500)")
    g.add_argument("--batch-size", type=int, default=200, help="minibatch size (default: 200)")
    g.add_argument("--compare-optimizers", action="store_true", help="also write optimizers_<model>.png comparing every optimiser's loss curve")
    g = p.add_argument_group("prediction")
    g.add_argument("--predict", metavar="CHECKPOINT", help="classify the given images / datasets with a saved svm.pt or softmax.pt")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print the report (or predictions) as JSON instead of a table")


def _parse_k_choices(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise BadInput("--k-choices", f"'{text}' is not a comma-separated list of integers") from None
    if not ks or min(ks) < 1:
        raise BadInput("--k-choices", f"'{text}' must list positive integers")
    return ks


def config_from_args(args: argparse.Namespace) -> BaselineConfig:
    if len(args.paths) != 1:
        raise BadInput("DIR", f"give exactly one dataset folder (got {len(args.paths)}; several paths only with --predict)")
    return BaselineConfig(
        data_dir=args.paths[0], model=args.model, device=args.device, out=args.out,
        num_train=args.num_train, num_test=args.num_test, seed=args.seed, val_fraction=args.val_fraction,
        k=args.k, k_choices=_parse_k_choices(args.k_choices), folds=args.folds, knn_method=args.knn_method,
        optimizer=args.optimizer, search=args.search, search_budget=args.search_budget,
        search_iters=args.search_iters, lr=args.lr, reg=args.reg, reg_type=args.reg_type, bias=args.bias,
        num_iters=args.num_iters, batch_size=args.batch_size, compare_optimizers=args.compare_optimizers,
        progress=not args.no_progress,
    )


def main(args: argparse.Namespace) -> int:
    if args.predict:
        from labeller.baseline.runner import predict_paths

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
    report = run(config_from_args(args))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_table(report))
    return 0
