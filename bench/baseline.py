"""Benchmark `labeller baseline`: kNN prediction against scikit-learn and faiss, the exact
int8 distance path, and linear training. Prints figures; not part of the test run.

    .venv/bin/python bench/baseline.py                      # the full PROPS size
    .venv/bin/python bench/baseline.py --train 10000 --test 2000 --repeats 3
    .venv/bin/python bench/baseline.py --device cuda --sklearn-runs 0   # on a GPU

Data: random uint8 32×32×3 images with random labels (50,000 train and 10,000 test by
default, the published PROPS size), preprocessed as the pipeline does (pixels / 255
minus the per-channel training mean, channel-first flattened to 3,072).

kNN (k = 10): wall time of fit + predict for
  ours-float32   KNNClassifier (chunked ‖a‖² + ‖b‖² − 2ab, float32 GEMM) on the features
  ours-int8      KNNClassifier(method="int8"): exact integer distances on the raw pixels
  faiss          faiss-cpu IndexFlatL2 (add + search), then the same majority vote
  scikit-learn   KNeighborsClassifier(algorithm="brute")
The first three alternate run by run (the order rotates each repeat) so that load from
other processes hits them alike; the speed-up is the median over repeats of the
per-repeat ratio faiss time / ours time. scikit-learn runs `--sklearn-runs` times.
Agreement = fraction of identical predicted labels.

Linear: time of 1,500 iterations at batch 200 (sgd) for the SVM and softmax, and of the
whole default search (random, 12 trials × 500 iterations, then the 1,500-iteration
retrain), on 40,000 training / 10,000 validation features of the same data.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labeller.baseline.device import resolve_device  # noqa: E402
from labeller.baseline.knn import KNNClassifier, majority_vote  # noqa: E402
from labeller.baseline.knn_int8 import int8_mode  # noqa: E402
from labeller.baseline.linear import LinearClassifier  # noqa: E402
from labeller.baseline.preprocess import images_to_features  # noqa: E402
from labeller.baseline.search import search_hyperparameters  # noqa: E402


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def make_data(n_train: int, n_test: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    raw_tr = rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8)
    raw_te = rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8)
    y_tr = rng.integers(0, 10, n_train)
    y_te = rng.integers(0, 10, n_test)
    mean = (raw_tr.reshape(-1, 3).mean(0) / 255.0).astype(np.float32)
    return raw_tr, raw_te, y_tr, y_te, images_to_features(raw_tr, mean), images_to_features(raw_te, mean)


CPU_TIMES: list[float] = []  # process CPU seconds of the last `timed` calls


def timed(fn):
    """(wall seconds, result); the process CPU seconds go to CPU_TIMES."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    CPU_TIMES.append(time.process_time() - c)
    return time.perf_counter() - t, out


def bench_knn(args, data, dev, figures):
    raw_tr, raw_te, y_tr, y_te, X_tr, X_te = data
    k = args.k
    y_tr_t = torch.as_tensor(y_tr)

    def ours_float():
        m = KNNClassifier(k=k, num_classes=10, device=dev).fit(X_tr.to(dev), y_tr_t)
        return m.predict(X_te.to(dev)).cpu().numpy()

    def ours_int8():
        m = KNNClassifier(k=k, num_classes=10, method="int8").fit(raw_tr.reshape(len(raw_tr), -1), y_tr_t)
        return m.predict(raw_te.reshape(len(raw_te), -1)).numpy()

    def faiss_knn():
        import faiss

        index = faiss.IndexFlatL2(X_tr.shape[1])
        index.add(X_tr.numpy())
        _, idx = index.search(X_te.numpy(), k)
        return majority_vote(y_tr_t[torch.from_numpy(idx)], 10).numpy()

    methods = {"ours-float32": ours_float}
    if dev.type == "cpu" and int8_mode():
        methods["ours-int8"] = ours_int8
    try:
        import faiss  # noqa: F401

        methods["faiss"] = faiss_knn
    except ImportError:
        print("faiss not installed: skipped")
    names = list(methods)
    times = {n: [] for n in names}
    cpu = {n: [] for n in names}
    preds = {}
    print(f"\nkNN prediction (k = {k}), wall time of fit + predict in seconds; runs alternate, order rotates")
    print("  run  " + "".join(f"{n:>16}" for n in names), flush=True)
    for r in range(args.repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        for n in order:
            t, p = timed(methods[n])
            times[n].append(t)
            cpu[n].append(CPU_TIMES[-1])
            preds[n] = p
        print(f"  {r + 1:>3}  " + "".join(f"{times[n][-1]:16.2f}" for n in names), flush=True)
    print("  med  " + "".join(f"{statistics.median(times[n]):16.2f}" for n in names))
    print("  process CPU seconds (all threads), median: "
          + ", ".join(f"{n} {statistics.median(cpu[n]):.1f}" for n in names))
    figures["knn_times_s"] = times
    figures["knn_cpu_s"] = cpu
    if "faiss" in times:
        for n in names:
            if n.startswith("ours"):
                ratios = [f / o for f, o in zip(times["faiss"], times[n], strict=True)]
                med = statistics.median(ratios)
                figures[f"faiss_over_{n}"] = ratios
                verdict = ("faster than faiss" if med > 1 else "NOT faster than faiss") + (
                    " (within ±5 %: a tie within this machine's noise)" if abs(med - 1) < 0.05 else "")
                print(f"  faiss / {n}: median ratio {med:.3f} (per run: {', '.join(f'{x:.2f}' for x in ratios)}) "
                      f"-> {n} is {verdict}")
    if args.sklearn_runs:
        from sklearn.neighbors import KNeighborsClassifier

        sk_times = []
        for _ in range(args.sklearn_runs):
            t, p = timed(lambda: KNeighborsClassifier(n_neighbors=k, algorithm="brute")
                         .fit(X_tr.numpy(), y_tr).predict(X_te.numpy()))
            sk_times.append(t)
        preds["scikit-learn"] = p
        figures["sklearn_times_s"] = sk_times
        print(f"  scikit-learn brute: {', '.join(f'{t:.2f}' for t in sk_times)} s"
              f" (median {statistics.median(sk_times):.2f}; {statistics.median(sk_times) / statistics.median(times['ours-float32']):.2f}x ours-float32)")
    print("agreement of predicted labels (fraction identical):")
    agree = {}
    keys = list(preds)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            agree[f"{a} vs {b}"] = float((preds[a] == preds[b]).mean())
            print(f"  {a} vs {b}: {100 * agree[f'{a} vs {b}']:.3f} %")
    figures["agreement"] = agree
    acc = {n: float((p == y_te).mean()) for n, p in preds.items()}
    figures["accuracy_random_labels"] = acc
    return preds


def bench_linear(args, data, dev, figures):
    _, _, y_tr, _, X_tr, _ = data
    n_val = len(y_tr) // 5
    Xt, yt = X_tr[n_val:].to(dev), torch.as_tensor(y_tr[n_val:]).to(dev)
    Xv, yv = X_tr[:n_val].to(dev), torch.as_tensor(y_tr[:n_val]).to(dev)
    print(f"\nlinear models on {len(yt):,} training / {len(yv):,} validation features, device {dev}")
    out = {}
    for loss in ("svm", "softmax"):
        LinearClassifier(loss=loss, num_iters=5, device=dev).fit(Xt, yt)  # warm-up (imports, kernels)
        t, m = timed(lambda loss=loss: LinearClassifier(loss=loss, lr=1e-3, reg=1e-4, num_iters=1500,
                                                        batch_size=200, device=dev).fit(Xt, yt))
        ts, res = timed(lambda loss=loss: search_hyperparameters(loss, Xt, yt, Xv, yv, optimizer="sgd",
                                                                 search="random", budget=12, num_iters=500,
                                                                 batch_size=200, device=dev))
        best = res.best
        tr, _ = timed(lambda loss=loss, best=best: LinearClassifier(loss=loss, lr=best.lr, reg=best.reg,
                                                                    num_iters=1500, batch_size=200,
                                                                    device=dev).fit(Xt, yt))
        out[loss] = {"train_1500_it_s": t, "search_s": ts, "retrain_s": tr, "W": m.W_.cpu(),
                     "loss_first": m.loss_history_[0], "loss_last": m.loss_history_[-1]}
        print(f"  {loss:<8} 1,500 iterations at batch 200: {t:6.2f} s ({1e3 * t / 1500:.2f} ms/it); "
              f"whole search (12 trials x 500 it) + retrain (1,500 it): {ts + tr:6.2f} s")
        figures[f"linear_{loss}"] = {k: v for k, v in out[loss].items() if k != "W"}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=int, default=50_000)
    ap.add_argument("--test", type=int, default=10_000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3, help="alternating runs of ours / faiss (default: 3)")
    ap.add_argument("--sklearn-runs", type=int, default=1, help="scikit-learn runs (0: skip; default: 1)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    ap.add_argument("--skip-knn", action="store_true")
    ap.add_argument("--skip-linear", action="store_true")
    ap.add_argument("--compare-cpu", action="store_true",
                    help="on a GPU: also run the CPU float32 kNN and linear training and report agreement")
    ap.add_argument("--threads", type=int, help="intra-op threads for torch and faiss (default: their own)")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args(argv)
    if args.threads:  # torch's pool, faiss's OpenMP, and numpy's OpenBLAS (ours uses it on CPU)
        torch.set_num_threads(args.threads)
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
        try:
            import faiss

            faiss.omp_set_num_threads(args.threads)
        except ImportError:
            pass
    dev = resolve_device(args.device)
    import sklearn

    try:
        import faiss

        faiss_v = faiss.__version__
    except ImportError:
        faiss_v = "absent"
    dev_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else cpu_name()
    print(f"labeller baseline bench: device {dev} ({dev_name}); CPU {cpu_name()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), faiss {faiss_v}, "
          f"scikit-learn {sklearn.__version__}; int8 path: {int8_mode() or 'unavailable'}")
    print(f"data: random uint8 32x32x3 images, {args.train:,} train, {args.test:,} test, 10 random labels")
    figures = {"device": str(dev), "device_name": dev_name, "cpu": cpu_name(), "train": args.train,
               "test": args.test, "k": args.k, "torch": torch.__version__, "int8_mode": int8_mode()}
    t0 = time.perf_counter()
    data = make_data(args.train, args.test)
    if not args.skip_knn:
        preds = bench_knn(args, data, dev, figures)
        if args.compare_cpu and dev.type == "cuda":
            cpu_pred = KNNClassifier(k=args.k, num_classes=10, device="cpu").fit(data[4], torch.as_tensor(data[2])).predict(data[5]).numpy()
            a = float((cpu_pred == preds["ours-float32"]).mean())
            figures["agreement_gpu_vs_cpu_knn"] = a
            print(f"  ours-float32 on {dev} vs on cpu: {100 * a:.3f} % identical predictions")
    if not args.skip_linear:
        lin = bench_linear(args, data, dev, figures)
        if args.compare_cpu and dev.type == "cuda":
            Xt = data[4][len(data[2]) // 5:]
            yt = torch.as_tensor(data[2][len(data[2]) // 5:])
            for loss in ("svm", "softmax"):
                m = LinearClassifier(loss=loss, lr=1e-3, reg=1e-4, num_iters=1500, batch_size=200, device="cpu").fit(Xt, yt)
                diff = float((m.W_ - lin[loss]["W"]).abs().max() / m.W_.abs().max())
                figures[f"linear_{loss}_gpu_vs_cpu_rel_max_diff_W"] = diff
                print(f"  {loss}: same seed on {dev} and cpu (same minibatches): max |W_gpu - W_cpu| / max |W_cpu| = {diff:.2e}; "
                      f"final loss {lin[loss]['loss_last']:.4f} vs {m.loss_history_[-1]:.4f}")
    print(f"\ntotal bench time {time.perf_counter() - t0:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
