"""tf.distribute for `defectkit train`: the strategy, who writes the run folder, and Keras 3 fixes.

`train.strategy`:
- `auto`: MirroredStrategy over the local GPUs when there are several, else the default (one device).
- `mirrored`: MirroredStrategy over every local GPU (or the CPU).
- `multi_worker`: MultiWorkerMirroredStrategy over the nodes listed in the `TF_CONFIG` environment
  variable (collective all-reduce; `AUTO` picks NCCL on GPUs and RING over gRPC on CPUs).

`train.batch_size` is the *global* batch: each step consumes batch_size samples in total, split evenly
over the replicas (per-replica batch = batch_size / replicas, so it must divide). Every worker builds the
same seeded input pipeline and keeps its share of each global batch (auto-shard policy DATA), so a run on
N workers takes the same steps as one process with the same batch and seed.

Only the chief (task `chief`, or `worker` 0 when the cluster has no chief) writes the run folder; the
other workers run the same callbacks into a temporary folder that is removed at the end (the pattern the
Keras multi-worker guide recommends: every worker saves, since saving may take part in collectives).

Keras 3 (up to 3.15 at least, keras-team/keras#20585) cannot `fit` under MultiWorkerMirroredStrategy:
its first-batch symbolic build calls `strategy.reduce` on the (x, y) tuple, and each step reduces the
scalar logs with `reduce("MEAN", axis=0)`; both raise. `multi_worker_fit` works around both while `fit`
runs: the model is built symbolically from the input spec beforehand, and logs — metric results that are
already all-reduced across workers — take the first local replica's value.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

from datatools.errors import InputError


def make_strategy(name: str) -> Any:
    """The tf.distribute strategy named by `train.strategy` (see the module docstring)."""
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        check_tf_config(os.environ.get("TF_CONFIG"))
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.AUTO
        )
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def check_tf_config(text: str | None) -> dict[str, Any]:
    """Parse `TF_CONFIG`; an InputError when it is missing or malformed (else TF would hang or train alone)."""
    where = "TF_CONFIG"
    if not text:
        raise InputError(
            'train.strategy = "multi_worker" needs the TF_CONFIG environment variable on every node, e.g. '
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}',
            where,
        )
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"not valid JSON: {e}", where) from None
    problems = []
    cluster = doc.get("cluster") if isinstance(doc, dict) else None
    task = doc.get("task") if isinstance(doc, dict) else None
    if not isinstance(cluster, dict) or not cluster:
        problems.append('needs "cluster": {"worker": ["host:port", ...]}')
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        problems.append('needs "task": {"type": "worker", "index": N}')
    elif isinstance(cluster, dict):
        hosts = cluster.get(task["type"])
        index = task["index"]
        if not isinstance(hosts, list) or not isinstance(index, int) or not 0 <= index < len(hosts):
            problems.append(f"task {task['type']!r} index {index!r} is not in cluster[{task['type']!r}]")
    if problems:
        raise InputError([f"{where}: {p}" for p in problems])
    return doc


def is_multi_worker(strategy: Any) -> bool:
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.extended._in_multi_worker_mode()


def is_chief(strategy: Any) -> bool:
    """True unless this process is a non-chief worker of a multi-worker cluster."""
    if not is_multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type in (None, "chief"):
        return True
    return task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().as_dict()


def check_global_batch(batch_size: int, replicas: int, source: str) -> None:
    """The global batch must split evenly over the replicas (else replicas weigh their samples unequally)."""
    if batch_size % replicas:
        lower = max(replicas, batch_size // replicas * replicas)
        raise InputError(
            f"[train] batch_size = {batch_size} is the global batch and must be a multiple of the {replicas} "
            f"replicas in sync (e.g. {lower} or {lower + replicas})",
            source,
        )


@contextlib.contextmanager
def multi_worker_fit(model: Any, strategy: Any, element_spec: Any) -> Iterator[None]:
    """Make `model.fit` work under MultiWorkerMirroredStrategy in Keras 3 (see the module docstring).

    A no-op for other strategies. `element_spec` is the train dataset's (x, y) spec: the model's metrics,
    loss and optimizer are built from it before `fit` so Keras never reduces a distributed input batch.
    """
    if not is_multi_worker(strategy):
        yield
        return
    import numpy as np
    from keras.src.backend.tensorflow import trainer as tf_trainer

    if not hasattr(tf_trainer, "reduce_per_replica") or not hasattr(model, "_symbolic_build"):
        raise RuntimeError(
            f"this Keras version changed its tf.distribute internals; update {__name__}.multi_worker_fit"
        )

    def zeros(spec: Any) -> Any:
        return np.zeros((1, *spec.shape[1:]), spec.dtype.as_numpy_dtype)

    batch = tuple(zeros(s) for s in element_spec)
    with strategy.scope():
        model._symbolic_build(data_batch=batch)
    original = tf_trainer.reduce_per_replica

    def reduce_per_replica(values: Any, strategy: Any, reduction: str = "auto") -> Any:
        # Train/test step logs are synchronized metric results: every replica holds the global value.
        return original(values, strategy, "first" if reduction in ("auto", "mean") else reduction)

    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    tf_trainer.reduce_per_replica = reduce_per_replica
    try:
        yield
    finally:
        tf_trainer.reduce_per_replica = original
        del model._maybe_symbolic_build


__all__ = [
    "check_global_batch",
    "check_tf_config",
    "is_chief",
    "is_multi_worker",
    "make_strategy",
    "multi_worker_fit",
]
