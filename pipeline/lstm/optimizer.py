"""The optimiser training compiles a model with: Adam or AdamW, its learning-rate schedule and
gradient clipping, all from `TrainParams`.

Training-side only (train.py, bench/train_throughput.py): kept out of `pipeline/lstm/model.py` so
that loading a model for generation never needs the params schema.
"""

from __future__ import annotations

import keras

from pipeline.core.config import TrainParams


def learning_rate(
    params: TrainParams, steps_per_epoch: int
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """`constant`, or `cosine`: decay over every planned step down to a tenth of the start."""
    if params.lr_schedule == "constant":
        return params.learning_rate
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=params.learning_rate,
        decay_steps=max(1, steps_per_epoch * params.epochs),
        alpha=0.1,
    )


def make_optimizer(params: TrainParams, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """Adam, or AdamW when `weight_decay` > 0 (decay on the weight matrices and the embedding,
    not on biases), with the configured schedule and gradient-norm clipping; with
    `ema_momentum` > 0 the optimiser keeps a moving average of the weights and writes it into
    the model after every epoch's last step (so validation, checkpoints and the saved model see
    the averaged weights)."""
    settings = {
        "learning_rate": learning_rate(params, steps_per_epoch),
        "clipnorm": params.clipnorm,
    }
    if params.ema_momentum:
        settings |= {
            "use_ema": True,
            "ema_momentum": params.ema_momentum,
            "ema_overwrite_frequency": steps_per_epoch,
        }
    if not params.weight_decay:
        return keras.optimizers.Adam(**settings)
    optimizer = keras.optimizers.AdamW(weight_decay=params.weight_decay, **settings)
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    return optimizer


def next_char_loss() -> keras.losses.Loss:
    """Cross-entropy of the next character, on the model's logits."""
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def compile_model(
    model: keras.Model, params: TrainParams, steps_per_epoch: int, jit_compile: bool = False
) -> None:
    """The optimiser of `make_optimizer` and cross-entropy on the logits.

    Under a `mixed_float16` policy Keras wraps the optimiser in a `LossScaleOptimizer`, so small
    float16 gradients do not underflow; `mixed_bfloat16` needs no loss scaling. XLA is off by
    default: Keras 3.15 turns it off under TensorFlow's op determinism (`train.deterministic`,
    the default: "Model doesn't support jit_compile=True"), so it measured no gain; the CPU's
    speed-up comes from the fused LSTM twin (`pipeline/lstm/fused.py`). `steps_per_execution`
    stays 1: Keras runs every execution whole, so an epoch of steps it does not divide (103 at
    the default) would train past its end, and batch-level callbacks (the progress bar) would
    fire once per execution.
    """
    model.compile(
        optimizer=make_optimizer(params, steps_per_epoch),
        loss=next_char_loss(),
        jit_compile=jit_compile,
    )
