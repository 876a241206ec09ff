"""Which device trains and in which precision: a GPU when TensorFlow sees one (mixed precision by
`train.precision`), else the CPU in float32."""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf


@dataclass(frozen=True)
class Hardware:
    device: str  # "GPU x1 (name)" or "CPU"
    precision: str  # a Keras dtype policy name


def choose_precision(requested: str, compute_capabilities: list[tuple[int, int]]) -> str:
    """Resolve `auto`: bfloat16 where every GPU has it natively (Ampere, 8.0, and later), float16
    on Volta/Turing tensor cores (7.x), else float32. On the CPU `auto` stays float32: only CPUs
    with AVX512-BF16 or AMX gain from `mixed_bfloat16` (see bench/train_throughput.py), the
    others emulate it slowly; set it explicitly where it pays."""
    if requested != "auto":
        return requested
    if not compute_capabilities:
        return "float32"
    oldest = min(compute_capabilities)
    if oldest >= (8, 0):
        return "mixed_bfloat16"
    return "mixed_float16" if oldest >= (7, 0) else "float32"


def detect_hardware(requested_precision: str) -> Hardware:
    gpus = tf.config.list_physical_devices("GPU")
    details = [tf.config.experimental.get_device_details(gpu) for gpu in gpus]
    device = f"GPU x{len(gpus)} ({details[0].get('device_name', 'unknown')})" if gpus else "CPU"
    capabilities = [tuple(d.get("compute_capability") or (0, 0)) for d in details]
    return Hardware(device, choose_precision(requested_precision, capabilities))
