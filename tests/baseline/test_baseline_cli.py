"""The `labeller baseline` / `labeller demo` options come from their config dataclasses."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from labeller.baseline import BaselineConfig
from labeller.cli.baseline import baseline_config
from labeller.cli.demo import DemoConfig
from labeller.cli.main import build_parser
from labeller.cli.main import main as cli_main
from labeller.cli.options import config_from_args
from labeller.core.errors import ConfigError


def _without_path(cfg: BaselineConfig) -> dict:
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k != "data_dir"}


def test_baseline_defaults_are_the_configs():
    args = build_parser().parse_args(["baseline", "DIR"])
    cfg = baseline_config(args)
    assert cfg.data_dir == "DIR"
    assert _without_path(cfg) == _without_path(BaselineConfig(data_dir="x"))


def test_baseline_flags_set_fields():
    args = build_parser().parse_args(["baseline", "DIR", "--no-progress", "--k-choices", "1,7",
                                      "--reg-type", "l1", "--num-train", "40", "--lr", "0.5"])
    cfg = baseline_config(args)
    assert (cfg.progress, cfg.k_choices, cfg.reg_type, cfg.num_train, cfg.lr) == (False, (1, 7), "l1", 40, 0.5)


def test_config_errors_name_the_field_and_the_cli_the_flag(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"^BaselineConfig\.folds: must be at least 2 \(got 1\)$"):
        BaselineConfig(data_dir=tmp_path, folds=1).check()
    with pytest.raises(ConfigError, match=r"^BaselineConfig\.optimizer: adamw's decoupled"):
        BaselineConfig(data_dir=tmp_path, optimizer="adamw", reg_type="l1").check()
    assert cli_main(["baseline", str(tmp_path), "--folds", "1"]) == 2
    assert capsys.readouterr().err.strip() == "labeller baseline: error: --folds: must be at least 2 (got 1)"


def test_demo_defaults_and_checks(capsys):
    cfg = config_from_args(DemoConfig, build_parser().parse_args(["demo"]))
    assert dataclasses.replace(cfg, log=None) == dataclasses.replace(DemoConfig(), log=None)
    with pytest.raises(ConfigError, match=r"^DemoConfig\.frames: must be at least 20, got 5$"):
        DemoConfig(frames=5).check()
    assert cli_main(["demo", "--scenes", "2"]) == 2
    assert capsys.readouterr().err.strip().startswith("labeller demo: error: --scenes: must be at least 3")


def test_python_m_labeller():
    res = subprocess.run([sys.executable, "-m", "labeller", "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.startswith("usage: labeller ")
    for name in ("synth", "info", "import", "track", "gui", "propagate", "labels", "export", "baseline", "demo"):
        assert f"\n    {name}" in res.stdout, name
