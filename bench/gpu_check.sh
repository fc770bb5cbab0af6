#!/usr/bin/env bash
# GPU check for `labeller baseline`: the bench/baseline.py figures on CUDA (kNN 50,000 x
# 10,000 with every exact path the probe tries, CV, a softmax epoch), every precision on
# the GPU checked against float64 on the CPU, plus one end-to-end `labeller baseline
# --device cuda` run on a small synthetic PROPS dataset. One short script: a few minutes
# on a single GPU (scikit-learn and faiss-cpu are skipped).
#
#   bash bench/gpu_check.sh            # figures printed; JSON and report under $OUT
#
# Without a CUDA GPU visible to torch it says so and exits 0 without checking anything.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
OUT_DIR="${OUT:-/tmp/labeller_gpu_check}"
mkdir -p "$OUT_DIR"

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_check: SKIPPED: torch.cuda.is_available() is False on this machine" \
         "($("$PY" -c 'import torch; print("torch", torch.__version__, "cuda build:", torch.version.cuda or "none")'))." \
         "Nothing was checked; run bench/baseline.py for the CPU figures." >&2
    exit 0
fi

echo "== device"
"$PY" -c 'import torch; p = torch.cuda.get_device_properties(0); print(f"{p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, CUDA {torch.version.cuda}")'
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,utilization.gpu,memory.used --format=csv || true

echo "== bench/baseline.py on cuda (PROPS size), every precision against float64 on the CPU"
timeout 300 "$PY" bench/baseline.py --device cuda --scales 1 --repeats 2 --sklearn-runs 0 \
    --skip-methods ours-float32 --check-precisions 2000 --json "$OUT_DIR/gpu_bench.json"

echo "== labeller baseline --device cuda on a small synthetic PROPS dataset"
timeout 120 "$PY" - "$OUT_DIR" <<'EOF'
import sys
from pathlib import Path

import numpy as np

from labeller.baseline import BaselineConfig, format_table, run
from labeller.baseline.data import write_props
from labeller.core.classes import PROPS_CLASS_NAMES

out = Path(sys.argv[1])
rng = np.random.default_rng(0)
scenes, test = {}, []
for c, name in enumerate(PROPS_CLASS_NAMES):
    base = rng.integers(0, 256, 3)
    def imgs(n):
        x = base + rng.normal(0, 110, (n, 32, 32, 3))  # noisy enough that no model is perfect
        return np.clip(x, 0, 255).astype(np.uint8)
    scenes[f"{name}_1"] = (imgs(60), [c] * 60)
    scenes[f"{name}_2"] = (imgs(20), [c] * 20)
    test.append(f"{name}_2")
write_props(out / "synthetic", scenes, test)
rep = {}
for device in ("cuda", "cpu"):
    rep[device] = run(BaselineConfig(data_dir=out / "synthetic", out=out / f"report_{device}", device=device,
                                     progress=False, search_budget=4, search_iters=200, num_iters=500))
    print(format_table(rep[device]))
for m in ("knn", "svm", "softmax"):
    a, b = rep["cuda"][m], rep["cpu"][m]
    print(f"{m}: test accuracy cuda {a['test_accuracy']:.4f} / cpu {b['test_accuracy']:.4f}; "
          f"hyperparameters {'same' if a['hyperparameters'] == b['hyperparameters'] else 'DIFFER'}")
assert rep["cuda"]["config"]["device"].startswith("cuda")
EOF
echo "gpu_check: done (files under $OUT_DIR)"
