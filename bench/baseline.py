"""Benchmark `labeller baseline`: kNN against faiss, scikit-learn and plain torch, the
cross-validation ratio, and linear training. Prints figures; not part of the test run.

    .venv/bin/python bench/baseline.py                         # PROPS size and 5x, CV, linear
    .venv/bin/python bench/baseline.py --scales 1 --repeats 3  # the PROPS size only
    .venv/bin/python bench/baseline.py --device cuda --sklearn-runs 0 --check-precisions 2000

Data: random uint8 32x32x3 images with random labels (the PROPS size: 50,000 train and
10,000 test; `--train`, `--test` change it). Scale s multiplies the training set (s x 50,000 images, the same 10,000
queries: s times the distance work and the memory of the training set). Peers get the
preprocessed float32 features (pixels / 255 minus the per-channel training mean,
channel-first flattened to 3,072); ours takes the raw pixels, whose neighbours are the
same (a common scale and shift changes no ranking).

kNN (k = 10), fit + predict, per method: wall seconds and process CPU seconds (all
threads):
  ours-auto      KNNClassifier(precision="auto"): the fastest exact path here (timed probe)
  ours-float32   KNNClassifier(precision="float32"): float32 GEMM + exact int32 re-check
  faiss          faiss-cpu IndexFlatL2 (add + search), then the same majority vote
  torch          plain torch: per 1,024 queries torch.cdist + topk, the same vote
  scikit-learn   KNeighborsClassifier(algorithm="brute"), `--sklearn-runs` times
The methods alternate run by run (the order rotates each repeat) so that load from other
processes hits them alike. Ratios are medians over repeats of per-repeat ratios.
Identical predictions: the fraction of test images every method labels as ours-auto does.
Targets: ours-auto <= 0.5 x faiss's CPU time on a CPU with integer dot products (VNNI),
and never more CPU than ours-float32.

Cross-validation: `cross_validate_k` (5 folds x 10 k, folds by a seeded permutation) over
40,000 training images against one prediction of 50,000 x 10,000, both ours-auto; target
CV <= 1.3 x one prediction.

Linear: 1,500 iterations at batch 200 (sgd) for the SVM and softmax, one softmax epoch,
one full-batch L-BFGS iteration, and the default search (random, 12 trials x 500 it) plus
the 1,500-iteration retrain, on 40,000 training / 10,000 validation features.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labeller.baseline.cv import cross_validate_k  # noqa: E402
from labeller.baseline.device import resolve_device  # noqa: E402
from labeller.baseline.knn import KNNClassifier, majority_vote  # noqa: E402
from labeller.baseline.knn_int8 import int8_available  # noqa: E402
from labeller.baseline.linear import LinearClassifier  # noqa: E402
from labeller.baseline.precision import choose_precision, cpu_dot_product_flags  # noqa: E402
from labeller.baseline.preprocess import images_to_features  # noqa: E402
from labeller.baseline.search import search_hyperparameters  # noqa: E402

PROPS_TRAIN, PROPS_TEST = 50_000, 10_000


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def make_data(n_train: int, n_test: int, seed: int = 0):
    """(raw_tr (n, 3072) uint8, raw_te, y_tr, y_te, X_tr float32 features, X_te)."""
    rng = np.random.default_rng(seed)
    raw_tr = rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8)
    raw_te = rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8)
    y_tr = rng.integers(0, 10, n_train)
    y_te = rng.integers(0, 10, n_test)
    mean = (raw_tr.reshape(-1, 3).mean(0) / 255.0).astype(np.float32)
    X_tr, X_te = images_to_features(raw_tr, mean), images_to_features(raw_te, mean)
    return (torch.from_numpy(raw_tr.reshape(n_train, -1)), torch.from_numpy(raw_te.reshape(n_test, -1)),
            torch.from_numpy(y_tr), torch.from_numpy(y_te), X_tr, X_te)


def timed(fn, dev):
    """(wall seconds, process CPU seconds, result)."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return time.perf_counter() - t, time.process_time() - c, out


def knn_methods(data, k, dev, skip):
    raw_tr, raw_te, y_tr, y_te, X_tr, X_te = data

    def ours(precision):
        def go():
            m = KNNClassifier(k=k, num_classes=10, device=dev, precision=precision).fit(raw_tr, y_tr)
            return m.predict(raw_te).cpu()
        return go

    def faiss_knn():
        import faiss

        index = faiss.IndexFlatL2(X_tr.shape[1])
        index.add(X_tr.numpy())
        _, idx = index.search(X_te.numpy(), k)
        return majority_vote(y_tr[torch.from_numpy(idx)], 10)

    def torch_knn():
        Xt, yt = X_tr.to(dev), y_tr.to(dev)
        out = []
        for s in range(0, len(X_te), 1024):
            d = torch.cdist(X_te[s : s + 1024].to(dev), Xt)
            out.append(majority_vote(yt[torch.topk(d, k, 1, largest=False).indices], 10).cpu())
        return torch.cat(out)

    methods = {"ours-auto": ours("auto"), "ours-float32": ours("float32"), "faiss": faiss_knn, "torch": torch_knn}
    try:
        import faiss  # noqa: F401
    except ImportError:
        print("faiss not installed: skipped")
        methods.pop("faiss")
    if dev.type == "cuda":
        methods.pop("faiss", None)  # faiss-cpu on the host against our GPU says nothing
    return {n: f for n, f in methods.items() if n not in skip}


def bench_knn(args, scale, dev, figures):
    n_train = args.train * scale
    print(f"\n== kNN, k = {args.k}: {n_train:,} train x {args.test:,} test x 3,072 "
          f"(scale {scale}; load average {loadavg()})", flush=True)
    data = make_data(n_train, args.test)
    skip = set(args.skip_methods.split(",")) if args.skip_methods else set()
    if scale > 1:
        skip |= set(args.skip_at_scale.split(",")) if args.skip_at_scale else set()
    methods = knn_methods(data, args.k, dev, skip)
    names = list(methods)
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    preds = {}
    repeats = args.repeats if scale == 1 else args.repeats_at_scale
    print("  run " + "".join(f"{n:>22}" for n in names) + "      (wall s / CPU s)", flush=True)
    for r in range(repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        for n in order:
            w, c, p = timed(methods[n], dev)
            wall[n].append(w)
            cpu[n].append(c)
            preds[n] = p
        print(f"  {r + 1:>3} " + "".join(f"{wall[n][-1]:>13.2f} / {cpu[n][-1]:6.1f}" for n in names)
              + f"   load {loadavg()}", flush=True)
    print("  med " + "".join(f"{statistics.median(wall[n]):>13.2f} / {statistics.median(cpu[n]):6.1f}" for n in names))
    if args.sklearn_runs and scale == 1 and "scikit-learn" not in skip:
        from sklearn.neighbors import KNeighborsClassifier

        raw_tr, raw_te, y_tr, y_te, X_tr, X_te = data
        for _ in range(args.sklearn_runs):
            w, c, p = timed(lambda: torch.from_numpy(KNeighborsClassifier(n_neighbors=args.k, algorithm="brute")
                                                     .fit(X_tr.numpy(), y_tr.numpy()).predict(X_te.numpy())), dev)
            wall.setdefault("scikit-learn", []).append(w)
            cpu.setdefault("scikit-learn", []).append(c)
        preds["scikit-learn"] = p
        print(f"  scikit-learn brute: wall {statistics.median(wall['scikit-learn']):.2f} s, "
              f"CPU {statistics.median(cpu['scikit-learn']):.1f} s ({len(cpu['scikit-learn'])} run(s), not alternated)")
    ref = preds["ours-auto"]
    same = {n: float((p == ref).double().mean()) for n, p in preds.items() if n != "ours-auto"}
    print("  identical predictions to ours-auto: " + ", ".join(f"{n} {100 * v:.3f} %" for n, v in same.items()))
    m = KNNClassifier(k=1, device=dev).fit(data[0][:64], data[2][:64])
    print(f"  ours-auto ran {m.precision_}: {m.precision_reason_}")
    res = {"train": n_train, "test": args.test, "wall_s": wall, "cpu_s": cpu, "identical_to_ours_auto": same,
           "precision": m.precision_, "precision_reason": m.precision_reason_, "peak_rss_gib": peak_rss_gib()}

    def ratio(a, b, what):
        rs = [x / y for x, y in zip(what[a], what[b], strict=True)]
        return statistics.median(rs), rs

    vnni = dev.type == "cuda" or bool({"avx512_vnni", "avx_vnni", "amx_int8"} & set(cpu_dot_product_flags()))
    if "faiss" in cpu:
        med, rs = ratio("ours-auto", "faiss", cpu)
        res["cpu_ours_auto_over_faiss"] = rs
        target = "<= 0.5 (VNNI CPU)" if vnni else "(no VNNI: no target against faiss)"
        ok = med <= 0.5 if vnni else None
        print(f"  CPU time ours-auto / faiss: median {med:.3f} (per run {', '.join(f'{x:.2f}' for x in rs)}); "
              f"target {target}: {'met' if ok else 'NOT met' if ok is False else '-'}")
    if "ours-float32" in cpu:
        med, rs = ratio("ours-auto", "ours-float32", cpu)
        res["cpu_ours_auto_over_float32"] = rs
        print(f"  CPU time ours-auto / ours-float32: median {med:.3f} (per run {', '.join(f'{x:.2f}' for x in rs)}); "
              f"target <= 1: {'met' if med <= 1.0 else 'NOT met'}")
    for peer in ("torch", "scikit-learn"):
        if peer in cpu:
            print(f"  CPU time {peer} / ours-auto: {statistics.median(cpu[peer]) / statistics.median(cpu['ours-auto']):.2f}x")
    print(f"  peak RSS so far {peak_rss_gib():.2f} GiB", flush=True)
    figures[f"knn_scale_{scale}"] = res
    return data


def bench_cv(args, data, dev, figures):
    raw_tr, raw_te, y_tr, y_te, *_ = data
    n_cv = 40_000 if len(raw_tr) >= 40_000 else int(0.8 * len(raw_tr))
    ks = (1, 3, 5, 8, 10, 12, 15, 20, 50, 100)
    print(f"\n== cross-validation: 5 folds x {len(ks)} k over {n_cv:,} images against one prediction of "
          f"{len(raw_tr):,} x {len(raw_te):,} (ours-auto; load average {loadavg()})", flush=True)

    def cv():
        return cross_validate_k(raw_tr[:n_cv], y_tr[:n_cv], ks, 5, 0, dev, num_classes=10)

    def one():
        return KNNClassifier(k=10, num_classes=10, device=dev).fit(raw_tr, y_tr).predict(raw_te)

    wall: dict[str, list[float]] = {"cv": [], "predict": []}
    cpu: dict[str, list[float]] = {"cv": [], "predict": []}
    for r in range(args.cv_repeats):
        for name, fn in ((("cv", cv), ("predict", one)) if r % 2 == 0 else (("predict", one), ("cv", cv))):
            w, c, out = timed(fn, dev)
            wall[name].append(w)
            cpu[name].append(c)
        print(f"  run {r + 1}: CV {wall['cv'][-1]:.2f} s wall / {cpu['cv'][-1]:.1f} s CPU, one prediction "
              f"{wall['predict'][-1]:.2f} / {cpu['predict'][-1]:.1f}   load {loadavg()}", flush=True)
    rw = statistics.median([a / b for a, b in zip(wall["cv"], wall["predict"], strict=True)])
    rc = statistics.median([a / b for a, b in zip(cpu["cv"], cpu["predict"], strict=True)])
    res = cross_validate_k(raw_tr[:2000], y_tr[:2000], (1, 3), 5, 0, dev, num_classes=10)
    print(f"  CV / one prediction: wall {rw:.2f}, CPU {rc:.2f}; target <= 1.3: {'met' if rc <= 1.3 else 'NOT met'} "
          f"(CPU); folds: {res.grouping.split(' (')[0]}, precision {res.precision}")
    figures["cv"] = {"wall_s": wall, "cpu_s": cpu, "ratio_wall": rw, "ratio_cpu": rc, "images": n_cv}


def bench_linear(args, data, dev, figures):
    y_all, X_all = data[2], data[4]
    n = min(len(y_all), args.train)
    n_val = n // 5
    Xt, yt = X_all[n_val:n].to(dev), y_all[n_val:n].to(dev)
    Xv, yv = X_all[:n_val].to(dev), y_all[:n_val].to(dev)
    print(f"\n== linear models on {len(yt):,} training / {len(yv):,} validation features, device {dev} "
          f"(load average {loadavg()})")
    out = {}
    for loss in ("svm", "softmax"):
        LinearClassifier(loss=loss, num_iters=5, device=dev).fit(Xt, yt)  # warm-up (imports, kernels)
        t, c, m = timed(lambda loss=loss: LinearClassifier(loss=loss, lr=1e-3, reg=1e-4, num_iters=1500,
                                                           batch_size=200, device=dev).fit(Xt, yt), dev)
        epoch_iters = len(yt) // 200
        te, _, _ = timed(lambda loss=loss, it=epoch_iters: LinearClassifier(loss=loss, lr=1e-3, reg=1e-4, num_iters=it,
                                                            batch_size=200, device=dev).fit(Xt, yt), dev)
        tl, _, ml = timed(lambda loss=loss: LinearClassifier(loss=loss, lr=1.0, reg=1e-4, optimizer="lbfgs",
                                                             num_iters=5, device=dev).fit(Xt, yt), dev)
        ts, _, res = timed(lambda loss=loss: search_hyperparameters(loss, Xt, yt, Xv, yv, optimizer="sgd",
                                                                    search="random", budget=12, num_iters=500,
                                                                    batch_size=200, device=dev), dev)
        best = res.best
        tr, _, _ = timed(lambda loss=loss, best=best: LinearClassifier(loss=loss, lr=best.lr, reg=best.reg,
                                                                       num_iters=1500, batch_size=200,
                                                                       device=dev).fit(Xt, yt), dev)
        out[loss] = {"train_1500_it_s": t, "cpu_1500_it_s": c, "epoch_s": te, "lbfgs_5_it_s": tl,
                     "lbfgs_passes": ml.passes_[-1], "search_s": ts, "retrain_s": tr, "W": m.W_.cpu(),
                     "loss_last": m.loss_history_[-1]}
        print(f"  {loss:<8} 1,500 it at batch 200: {t:6.2f} s ({1e3 * t / 1500:.2f} ms/it, CPU {c:.1f} s); "
              f"one epoch ({epoch_iters} it): {te:.2f} s; L-BFGS 5 full-batch it ({ml.passes_[-1]:.0f} passes): "
              f"{tl:.2f} s; search (12 x 500 it) + retrain (1,500 it): {ts + tr:6.2f} s", flush=True)
        figures[f"linear_{loss}"] = {k: v for k, v in out[loss].items() if k != "W"}
    return out


def check_precisions(args, data, dev, figures):
    """Every precision on `dev` against a float64 search on the CPU (n queries)."""
    raw_tr, raw_te, y_tr = data[0], data[1][: args.check_precisions], data[2]
    print(f"\n== every precision on {dev} vs float64 on the CPU ({len(raw_te):,} queries x {len(raw_tr):,})")
    ref_d, ref_i = KNNClassifier(k=10, precision="float64").fit(raw_tr, y_tr).kneighbors(raw_te)
    res = {}
    for p in ("int8", "float32", "float64", "float16", "bfloat16"):
        if p == "int8" and not int8_available(dev):
            print(f"  {p}: no exact int8 GEMM on {dev.type}")
            continue
        w, _, (d, i) = timed(lambda p=p: KNNClassifier(k=10, precision=p, device=dev).fit(raw_tr, y_tr)
                             .kneighbors(raw_te), dev)
        same = bool(torch.equal(i.cpu(), ref_i) and torch.equal(d.cpu(), ref_d))
        res[p] = {"identical": same, "wall_s": w}
        print(f"  {p:<9} neighbours and distances identical: {same}   ({w:.2f} s)", flush=True)
    figures["precisions_identical"] = res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scales", default="1,5", help="training-set multiples of 50,000 (default: 1,5)")
    ap.add_argument("--train", type=int, default=PROPS_TRAIN, help="training images at scale 1 (default: 50,000)")
    ap.add_argument("--test", type=int, default=PROPS_TEST)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=2, help="alternating runs at scale 1 (default: 2)")
    ap.add_argument("--repeats-at-scale", type=int, default=1, help="alternating runs at scales > 1 (default: 1)")
    ap.add_argument("--skip-methods", default="", help="comma list of methods to leave out")
    ap.add_argument("--skip-at-scale", default="torch,ours-float32",
                    help="methods left out at scales > 1 (default: torch,ours-float32: the long ones)")
    ap.add_argument("--sklearn-runs", type=int, default=1, help="scikit-learn runs at scale 1 (0: skip; default: 1)")
    ap.add_argument("--cv-repeats", type=int, default=1, help="CV / prediction pairs (default: 1)")
    ap.add_argument("--check-precisions", type=int, default=0, metavar="N",
                    help="also check every precision on the device against float64 on N queries")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    ap.add_argument("--skip-knn", action="store_true")
    ap.add_argument("--skip-cv", action="store_true")
    ap.add_argument("--skip-linear", action="store_true")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args(argv)
    dev = resolve_device(args.device)
    import sklearn

    try:
        import faiss

        faiss_v = faiss.__version__
    except ImportError:
        faiss_v = "absent"
    dev_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else cpu_name()
    choice = choose_precision("auto", True, dev)
    print(f"labeller baseline bench: device {dev} ({dev_name}); CPU {cpu_name()}, {os.cpu_count()} cores, "
          f"dot-product flags: {', '.join(cpu_dot_product_flags()) or 'none'}; torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), faiss {faiss_v}, scikit-learn {sklearn.__version__}")
    print(f"auto precision: {choice.precision} ({choice.reason})")
    figures: dict = {"device": str(dev), "device_name": dev_name, "cpu": cpu_name(), "k": args.k,
                     "torch": torch.__version__, "auto": choice.precision, "auto_reason": choice.reason}
    t0 = time.perf_counter()
    data = None
    for scale in [int(s) for s in args.scales.split(",") if s.strip()]:
        if not args.skip_knn:
            d = bench_knn(args, scale, dev, figures)
            if scale == 1:
                data = d
    if data is None:
        data = make_data(args.train, args.test)
    if args.check_precisions:
        check_precisions(args, data, dev, figures)
    if not args.skip_cv:
        bench_cv(args, data, dev, figures)
    if not args.skip_linear:
        bench_linear(args, data, dev, figures)
    print(f"\ntotal bench time {time.perf_counter() - t0:.0f} s; load average {loadavg()}; "
          f"peak RSS {peak_rss_gib():.2f} GiB")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
