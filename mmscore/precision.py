"""Which number format the encoders run in: float32, or bfloat16 where the hardware does it natively.

The encoders are nearly all of the scoring cost. CPUs with ``avx512_bf16`` or AMX, and GPUs of compute
capability 8.0 or newer, multiply bfloat16 about twice as fast as float32; elsewhere bfloat16 is emulated
and slower. Only the encoders' layers change (Keras ``mixed_bfloat16``: float32 weights, bfloat16 maths);
pooling, the head, offsets and temperature stay float32. Training always embeds in float32.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

PRECISIONS = ("auto", "float32", "bfloat16")
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags (empty where /proc/cpuinfo is not available)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    return {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[1].split()}


@cache
def hardware_bf16() -> bool:
    """Whether this machine's scoring device does bfloat16 natively (a capable GPU if any, else the CPU)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0))
        return tuple(capability) >= (8, 0)
    return any(flag in cpu_flags() for flag in CPU_BF16_FLAGS)


def resolve_precision(requested: str = "auto") -> str:
    """``float32`` or ``bfloat16``: ``auto`` picks bfloat16 only where :func:`hardware_bf16` says so."""
    if requested not in PRECISIONS:
        raise ValueError(f"unknown precision {requested!r}; choose from {', '.join(PRECISIONS)}")
    if requested == "auto":
        return "bfloat16" if hardware_bf16() else "float32"
    return requested


class EmulatedPrecisionWarning(UserWarning):
    """``--precision bfloat16`` forced where the hardware only emulates it."""


# Measured on a 2-core x86-64 CPU with bfloat16 emulated (TensorFlow's own kernels, as without avx512_bf16):
# 256 real tweet pairs, texts only, scored at 22-24 rows/s in float32 and 3.4-4.5 rows/s in bfloat16.
EMULATED_BF16 = (
    "bfloat16 is emulated on this machine (no avx512_bf16/AMX CPU, no GPU of compute capability 8.0+): "
    "scoring measured about 5x slower than float32 on such a CPU; --precision auto picks float32 here"
)


def warn_if_emulated(requested: str) -> None:
    """Warn (:class:`EmulatedPrecisionWarning`) when bfloat16 is forced on hardware that only emulates it."""
    if requested == "bfloat16" and not hardware_bf16():
        import warnings

        warnings.warn(EMULATED_BF16, EmulatedPrecisionWarning, stacklevel=3)


def encoder_dtype(precision: str) -> str | None:
    """The Keras dtype policy for an encoder built at ``precision`` (None: the float32 default)."""
    return "mixed_bfloat16" if precision == "bfloat16" else None
