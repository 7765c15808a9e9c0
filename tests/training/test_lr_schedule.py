"""`[train] lr_schedule`: the cosine curve's values, the reducer it replaces, a saved run that keeps it."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from defectkit.cli import app
from training.callbacks import standard_callbacks
from training.config import load_config
from training.runs import learning_rate, load_model, make_optimizer

from .conftest import write_config

runner = CliRunner()
COSINE = {"lr_schedule": "cosine", "warmup_epochs": 1, "epochs": 3, "learning_rate": 0.01, "min_lr": 1e-4}


def test_cosine_warms_up_then_decays_to_min_lr(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path / "cfg.toml", "ds", train=COSINE))
    schedule = learning_rate(config, 10)  # 10 steps per epoch: warm-up 0…10, decay 10…30
    values = [float(schedule(step)) for step in (0, 5, 10, 20, 30)]
    mid = 1e-4 + (0.01 - 1e-4) / 2
    assert np.allclose(values, [0.0, 0.005, 0.01, mid, 1e-4], rtol=1e-5, atol=1e-9)
    assert float(make_optimizer(config, 10).learning_rate) == 0.0  # the optimizer starts on the curve

    plain = load_config(write_config(tmp_path / "plain.toml", "ds", train={"learning_rate": 0.01}))
    assert learning_rate(plain, None) == 0.01
    with pytest.raises(ValueError, match="steps per epoch"):
        learning_rate(config, None)


def test_cosine_replaces_the_plateau_reducer(tmp_path: Path) -> None:
    cosine = load_config(write_config(tmp_path / "c.toml", "ds", train=COSINE))
    plateau = load_config(write_config(tmp_path / "p.toml", "ds", train={"reducer_patience": 2}))
    kinds = [
        {type(c).__name__ for c in standard_callbacks(cfg, tmp_path / name, resume=False)}
        for name, cfg in (("c", cosine), ("p", plateau))
    ]
    assert "ReduceLROnPlateau" not in kinds[0]
    assert "ReduceLROnPlateau" in kinds[1]


def test_unknown_schedule_lists_the_valid_names(tmp_path: Path, tiny_dataset: Path) -> None:
    cfg = write_config(tmp_path / "cfg.toml", str(tiny_dataset), train={"lr_schedule": "cosin"})
    result = runner.invoke(app, ["train", str(cfg)])
    assert result.exit_code == 1
    assert "lr_schedule" in result.output and "cosine" in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_a_cosine_run_saves_and_resumes_on_its_curve(tmp_path: Path, tiny_dataset: Path) -> None:
    train = {**COSINE, "epochs": 2, "patience": 0, "output_dir": str(tmp_path / "run")}
    cfg = write_config(tmp_path / "cfg.toml", str(tiny_dataset), train=train)
    result = runner.invoke(app, ["train", str(cfg)])
    assert result.exit_code == 0, result.output
    assert "ReduceLROnPlateau" not in result.output
    config = load_config(cfg)
    model = load_model(tmp_path / "run" / "model.keras", config, compile=True)
    schedule = model.optimizer._learning_rate  # the schedule object itself, restored from model.keras
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    steps = -(-8 // 4)  # 8 train rows, batch 4
    assert schedule.decay_steps == 2 * steps - steps and schedule.warmup_steps == steps
    # A longer run on resume stretches the curve to the new epochs (not min_lr for the extra ones).
    resumed = runner.invoke(app, ["train", str(cfg), "--resume", "--set", "train.epochs=3"])
    assert resumed.exit_code == 0, resumed.output
    stretched = load_model(tmp_path / "run" / "model.keras", config, compile=True).optimizer._learning_rate
    assert stretched.decay_steps == 3 * steps - steps
    history = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["0", "1", "2"]
