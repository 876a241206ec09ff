"""`train.distribution` -> a `tf.distribute` strategy, and input pipelines split to match it.

- `none`: the default strategy (one device: the first GPU, else the CPU).
- `mirrored`: `MirroredStrategy` over every local GPU, or every logical CPU device without one.
- `multi_worker`: `MultiWorkerMirroredStrategy`; the cluster and this task's role come from the
  `TF_CONFIG` environment variable. Create it before any other TensorFlow op runs.
- `auto`: `mirrored` when more than one GPU is visible, else `none`.

`train.batch_size` is the GLOBAL batch: each of the `R` replicas gets `batch_size / R` windows of
every batch, the loss is averaged over the whole global batch and the gradients are summed across
replicas, so one optimiser step sees the same data whatever the number of devices.

Multi-worker runs assume a shared file system: only the chief writes outputs, checkpoints and
MLflow; a resumed worker reads the chief's checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable

import keras
import tensorflow as tf

from pipeline.core.errors import PipelineError

log = logging.getLogger(__name__)


def create_strategy(distribution: str) -> tf.distribute.Strategy:
    """The strategy for a `train.distribution` value (see the module docstring)."""
    gpus = tf.config.list_physical_devices("GPU")
    if distribution == "auto":
        distribution = "mirrored" if len(gpus) > 1 else "none"
    if distribution == "none":
        return tf.distribute.get_strategy()
    if distribution == "mirrored":
        if gpus:
            return tf.distribute.MirroredStrategy()
        devices = [device.name for device in tf.config.list_logical_devices("CPU")]
        if len(devices) == 1:
            log.warning("train.distribution is mirrored, but there is one device: no speed-up")
        return tf.distribute.MirroredStrategy(devices)
    if distribution == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise PipelineError(
                "train.distribution is multi_worker but TF_CONFIG is not set; set it on every "
                "worker (cluster addresses and this task's type and index) or use mirrored/none"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise PipelineError(f"unknown train.distribution {distribution!r}")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True for the one task that writes outputs: the chief, or worker 0 when there is no chief."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def describe_strategy(strategy: tf.distribute.Strategy) -> str:
    """`"MirroredStrategy x2"` (x = replicas), `"one device"` for the default strategy."""
    if strategy is tf.distribute.get_strategy() and not tf.distribute.has_strategy():
        return "one device"
    name = type(strategy).__name__
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        name = "MultiWorkerMirroredStrategy"  # the class is an alias of CollectiveAllReduce...
    return f"{name} x{strategy.num_replicas_in_sync}"


def task_description() -> str:
    """`"worker 1 of 2"` under TF_CONFIG, else `"single task"`."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = config.get("task")
    if not task:
        return "single task"
    workers = sum(len(addresses) for addresses in config.get("cluster", {}).values())
    return f"{task['type']} {task['index']} of {workers}"


def check_batch_size(batch_size: int, replicas: int) -> None:
    if batch_size % replicas:
        raise PipelineError(
            f"train.batch_size {batch_size} does not split evenly over {replicas} replicas; "
            f"use a multiple of {replicas}"
        )


def distribute_dataset(
    strategy: tf.distribute.Strategy, make_dataset: Callable[[], tf.data.Dataset], batch_size: int
) -> tf.data.Dataset | tf.distribute.DistributedDataset:
    """Split every global batch of `make_dataset()` over the replicas, rows in order.

    Each input pipeline (one per worker) builds the same global stream and keeps its own
    contiguous slice of every batch, then hands consecutive per-replica pieces to its local
    replicas. So replica `r` of `R` always gets rows `[r * B/R, (r + 1) * B/R)` of global batch
    `B`, and the union over replicas is exactly the single-device batch. (TF's default
    auto-sharding would instead give each worker whole, different batches.)
    """
    replicas = strategy.num_replicas_in_sync
    if replicas == 1:
        return make_dataset()
    check_batch_size(batch_size, replicas)

    def input_pipeline(context: tf.distribute.InputContext) -> tf.data.Dataset:
        per_pipeline = batch_size // context.num_input_pipelines
        low = context.input_pipeline_id * per_pipeline

        def keep_slice(*tensors: tf.Tensor) -> tuple[tf.Tensor, ...]:
            return tuple(tensor[low : low + per_pipeline] for tensor in tensors)

        dataset = make_dataset().map(keep_slice)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        per_replica = context.get_per_replica_batch_size(batch_size)
        # A short last (validation) batch leaves some replicas an empty piece, which tf.distribute
        # handles; rebatch keeps each piece's rows together and in order.
        return dataset.rebatch(per_replica).with_options(options).prefetch(tf.data.AUTOTUNE)

    return strategy.distribute_datasets_from_function(input_pipeline)


def clip_summed_gradients(optimizer: keras.optimizers.Optimizer) -> None:
    """Make `clipnorm` clip the true gradient, the same on one device or many.

    Two Keras 3 details would otherwise change what gets clipped:
    - it clips inside each replica, before the replicas' gradients are summed
      (`BaseOptimizer._backend_apply_gradients` clips, then the TF backend's
      `_backend_update_step` all-reduces), so R replicas each clip their own share;
    - for a sparse gradient (the embedding's `IndexedSlices`) it takes the norm over the
      unsummed rows, so a character seen twice in a batch counts as two rows, and the norm
      depends on how the batch was split.
    This wraps the optimiser's clip step: densify, sum over replicas, clip the total, and hand
    back `total / R` per replica, which Keras then sums to exactly the clipped total. With R > 1
    it costs one extra all-reduce per step. Only this instance changes, so the saved model
    still holds a plain Adam.
    """
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # under a LossScaleOptimizer
    if not (optimizer.clipnorm or optimizer.global_clipnorm or optimizer.clipvalue):
        return
    clip = optimizer._clip_gradients

    def clip_total(grads: list[tf.Tensor | None]) -> list[tf.Tensor | None]:
        present = [index for index, grad in enumerate(grads) if grad is not None]
        dense = [tf.convert_to_tensor(grads[index]) for index in present]  # sums repeated rows
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync if context else 1
        if replicas > 1:
            dense = context.all_reduce(tf.distribute.ReduceOp.SUM, dense)
        result: list[tf.Tensor | None] = list(grads)
        for index, grad in zip(present, clip(dense), strict=True):
            result[index] = grad / replicas
        return result

    optimizer._clip_gradients = clip_total


def prepare_model(model: keras.Model, strategy: tf.distribute.Strategy) -> None:
    """Work around Keras 3 `fit` failing under MultiWorkerMirroredStrategy (keras#20585).

    Two spots of Keras 3.15's TF trainer break with several workers:
    - before training it pulls one batch and calls `strategy.reduce` on the whole
      `(inputs, targets)` tuple to learn shapes; `reduce` takes no tuples. That pre-build only
      runs when the model remembers the strategy it was created under; forgetting it makes Keras
      use the strategy of the enclosing scope, so `fit` must run inside `strategy.scope()` (as
      `train.fit_model` does). The model is already built, so nothing is lost.
    - every step it averages the per-step logs across workers with
      `strategy.reduce("MEAN", value, axis=0)`, which fails on the scalar loss. Those per-step
      values only feed the progress bar; the epoch logs that early stopping, checkpoints and
      MLflow read come from the metric objects, whose sums are all-reduced when read. So the
      multi-worker branch is switched off and each worker averages its own replicas' values.
    The multi-worker test in `tests/test_distribute.py` fails if a Keras upgrade changes this.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    from keras.src.backend.tensorflow import trainer as keras_tf_trainer  # noqa: PLC0415

    model._distribute_strategy = None
    keras_tf_trainer._collective_all_reduce_multi_worker = lambda strategy: False
