"""Self-check: both encoders load offline and behave like the pretrained models they claim to be."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmscore.images.decode import unit_pixels

PARAPHRASES = ("A man is playing a guitar on stage.", "On the stage, a man plays the guitar.")
UNRELATED = "The central bank raised interest rates again."
# ImageNet ids: 967 espresso, 968 cup, 504 coffee mug; 281-285 the domestic cat classes.
PHOTO_CHECKS = {"coffee.png": {967, 968, 504}, "chelsea.png": {281, 282, 283, 284, 285}}


@dataclass
class DoctorReport:
    versions: dict[str, str] = field(default_factory=dict)
    devices: list[str] = field(default_factory=list)
    load_seconds: dict[str, float] = field(default_factory=dict)
    cosines: dict[str, float] = field(default_factory=dict)
    photos: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(self.checks.values())


def sample_photo_path(name: str) -> Path:
    """A real photo shipped inside the scikit-image wheel."""
    import skimage

    return Path(skimage.__file__).parent / "data" / name


def load_photo(path: Path, size: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return unit_pixels(np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR)))


def top_classes(image_encoder, photo: np.ndarray, k: int = 3) -> list[tuple[int, float]]:
    """The k most likely ImageNet class ids with their probabilities."""
    logits = np.asarray(image_encoder.model(photo[None], training=False)["logits"])[0]
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    top = np.argsort(-probs)[:k]
    return [(int(i), float(probs[i])) for i in top]


def run_doctor() -> DoctorReport:
    """Load the default encoders and run the behavioural checks."""
    report = DoctorReport()
    started = time.perf_counter()
    import keras
    import keras_hub
    import tensorflow as tf
    from keras_hub.utils import imagenet_id_to_name

    from mmscore.encoders import registry
    from mmscore.version import __version__

    report.load_seconds["import tensorflow+keras"] = time.perf_counter() - started
    report.versions = {
        "mmscore": __version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "keras-hub": keras_hub.__version__,
    }
    report.devices = [f"{d.device_type}:{d.name}" for d in tf.config.list_physical_devices()]

    started = time.perf_counter()
    text = registry.text_encoder()
    report.load_seconds[f"text encoder {text.name}"] = time.perf_counter() - started
    started = time.perf_counter()
    image = registry.image_encoder()
    report.load_seconds[f"image encoder {image.name} ({image.loaded_from})"] = time.perf_counter() - started
    report.versions[f"{text.name} weights"] = text.version
    report.versions[f"{image.name} weights"] = image.version

    a, b, c = text.encode([*PARAPHRASES, UNRELATED])
    report.cosines = {"paraphrases": float(a @ b), "unrelated": float(a @ c)}
    report.checks["paraphrase cosine exceeds unrelated by 0.3"] = report.cosines["paraphrases"] > (
        report.cosines["unrelated"] + 0.3
    )
    accented = text.tokenize(["café naïve résumé"])[0].numpy()[0]
    report.checks["accented words are not [UNK]"] = text.tokenizer.token_to_id("[UNK]") not in accented

    for name, expected in PHOTO_CHECKS.items():
        top = top_classes(image, load_photo(sample_photo_path(name), image.image_size))
        report.photos[name] = [(imagenet_id_to_name(i), p) for i, p in top]
        report.checks[f"{name} classified correctly (top-3)"] = bool({i for i, _ in top} & expected)
    return report
