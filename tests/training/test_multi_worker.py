"""`train.strategy = "multi_worker"` really run: two worker processes on 127.0.0.1 (CPU, TF_CONFIG) train
one epoch and end with the weights one process gets with the same global batch and seed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.training.conftest import build_dataset, write_config

DEFECTKIT = Path(sys.executable).parent / "defectkit"


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on 127.0.0.1 (bound together, then released for the workers)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def launch(cfg: Path, cwd: Path, log: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.Popen(
        [str(DEFECTKIT), "train", str(cfg), *args],
        cwd=cwd,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


def wait_all(procs: list[subprocess.Popen], logs: list[Path], timeout: float = 240) -> None:
    try:
        for p in procs:
            p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        pytest.fail("training hung:\n" + "\n".join(f"--- {lg}\n{lg.read_text()[-3000:]}" for lg in logs))
    for p, lg in zip(procs, logs, strict=True):
        assert p.returncode == 0, f"{lg}:\n{lg.read_text()[-3000:]}"


def weights(path: Path) -> list[np.ndarray]:
    import keras

    from training.runs import custom_objects

    return keras.saving.load_model(path, custom_objects=custom_objects(), compile=False).get_weights()


@pytest.mark.slow
def test_two_workers_match_one_process(tmp_path: Path) -> None:
    build_dataset(tmp_path / "ds", splits={"train": 8, "valid": 2})
    cfg = write_config(
        tmp_path / "c.toml",
        "ds",
        model={"num_layers": 2, "dropout_rate": 0.0},
        train={
            "epochs": 1,
            "batch_size": 4,  # global: 2 per worker
            "learning_rate": 1e-3,
            "num_infer_images": 2,
            "patience": 0,
            "reducer_patience": 0,
            "metrics": ["mean_iou"],
        },
    )
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs, logs = [], []
    for i in range(2):
        tmp = tmp_path / f"tmp{i}"
        tmp.mkdir()
        logs.append(tmp_path / f"worker{i}.log")
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        procs.append(
            launch(
                cfg,
                tmp_path,
                logs[-1],
                "--set",
                "train.strategy=multi_worker",
                "--set",
                "train.output_dir=mw",
                env={"TF_CONFIG": tf_config, "TMPDIR": str(tmp)},
            )
        )
    logs.append(tmp_path / "single.log")
    procs.append(launch(cfg, tmp_path, logs[-1], "--set", "train.output_dir=single"))
    wait_all(procs, logs)

    # Only the chief (worker 0) wrote the run folder; worker 1 removed its temporary one.
    run = tmp_path / "mw"
    assert {"model.keras", "history.csv", "config.toml", "classes.json", "logs", "epoch_inference"} <= {
        p.name for p in run.iterdir()
    }
    assert list((tmp_path / "tmp1").iterdir()) == []
    history = (run / "history.csv").read_text().splitlines()
    assert len(history) == 2  # header + one epoch

    multi, single = weights(run / "model.keras"), weights(tmp_path / "single" / "model.keras")
    assert len(multi) == len(single)
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(multi, single, strict=True))
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(multi, weights_at_init(cfg, tmp_path), strict=True))
    assert moved > 1e-4, "training did not change the weights"
    assert diff <= 1e-5, f"max |Δw| = {diff:.3g}"


def weights_at_init(cfg: Path, cwd: Path) -> list[np.ndarray]:
    """The seeded initial weights (as `train` builds them), to check that the epoch moved them."""
    import keras

    from training.config import load_config
    from training.models.registry import build_model

    config = load_config(cfg)
    keras.utils.set_random_seed(config.train["seed"])
    return build_model(config, 3).get_weights()


def test_tf_config_is_checked() -> None:
    from datatools.errors import InputError
    from training.distribute import check_tf_config

    with pytest.raises(InputError, match="needs the TF_CONFIG"):
        check_tf_config(None)
    with pytest.raises(InputError, match="not valid JSON"):
        check_tf_config("{cluster")
    with pytest.raises(InputError, match="index 2 is not in cluster"):
        check_tf_config(json.dumps({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}))
    doc = {"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}
    assert check_tf_config(json.dumps(doc)) == doc


def test_global_batch_must_split_over_replicas() -> None:
    from datatools.errors import InputError
    from training.distribute import check_global_batch

    check_global_batch(4, 2, "c.toml")
    with pytest.raises(InputError, match="multiple of the 2 replicas"):
        check_global_batch(5, 2, "c.toml")
