"""The model card: the JSON that sits beside the head weights and says how to rebuild and use them."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mmscore.errors import InvalidModelError
from mmscore.labels import LABELS

CARD_FILE = "model_card.json"
HEAD_FILE = "head.keras"
TEXT_WEIGHTS_FILE = "text_encoder.weights.h5"  # only in models trained with --fine-tune


@dataclass
class ModelCard:
    text_encoder: str
    image_encoder: str
    encoder_versions: dict[str, str]
    sequence_length: int
    image_size: int
    labels: list[str] = field(default_factory=lambda: list(LABELS))
    decision_offsets: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    temperature: float = 1.0  # probabilities are softmax((logits + offsets) / temperature); fitted on held-out rows
    loss: str = "cross_entropy"
    training_data_sha256: str = ""
    training_rows: int = 0
    cv_metrics: dict = field(default_factory=dict)
    trained_at: str = ""
    mmscore_version: str = ""
    notes: str = ""
    text_encoder_weights: str = ""  # file in the model directory with fine-tuned text encoder weights
    pair_features: str = ""  # the lexical pair feature set the head takes (mmscore.model.pair_features); "" for none
    image_rows: int = 0  # training rows with at least one decoded image of their own
    uses_images: bool = True  # False: the head never saw images; scoring hides them (statuses still reported)
    photo_augmentation: dict = field(default_factory=dict)  # unrelated photos attached in training, if any
    # per modality ("text", "image"): spec, backbone class, pooling, weights_sha256 of the encoder trained with
    encoders: dict = field(default_factory=dict)
    # the in-domain reference (domain.npz beside the head): how it was fitted, on what, and its cut
    domain: dict = field(default_factory=dict)
    # a model extended from another (--base): that model's id and folder, the new data's hash, row counts, weight
    base: dict = field(default_factory=dict)
    # the second head (out_of_domain.npz): what it is, its rows, their held-out figures, routing on training pairs
    out_of_domain: dict = field(default_factory=dict)
    # the pair reader (pair_reader.npz) the second head reads pairs with: what it was trained on, its dev accuracy
    pair_reader: dict = field(default_factory=dict)

    def validate(self) -> None:
        from mmscore.model.pair_features import KNOWN as KNOWN_PAIR_FEATURES

        if list(self.labels) != list(LABELS):
            raise InvalidModelError(f"model labels {self.labels} differ from the contract {list(LABELS)}")
        if len(self.decision_offsets) != len(LABELS):
            raise InvalidModelError("decision_offsets must have one value per label")
        for kind, spec in (("text", self.text_encoder), ("image", self.image_encoder)):
            if not isinstance(spec, str) or not spec.strip():
                raise InvalidModelError(f"the {kind} encoder must be a registered name or keras-hub preset")
        if self.text_encoder_weights not in ("", TEXT_WEIGHTS_FILE):
            raise InvalidModelError(f"text_encoder_weights must be {TEXT_WEIGHTS_FILE!r} or empty")
        if self.pair_features not in ("", *KNOWN_PAIR_FEATURES):
            raise InvalidModelError(f"unknown pair feature set {self.pair_features!r}")
        if not (isinstance(self.temperature, int | float) and 0 < self.temperature < 1e3):
            raise InvalidModelError(f"temperature must be a positive number, not {self.temperature!r}")
        if not (8 <= self.sequence_length <= 512):
            raise InvalidModelError("sequence_length must be within 8..512")

    def check_encoder(self, kind: str, encoder) -> None:
        """Refuse an encoder whose weights differ from the ones this model was trained with (when recorded)."""
        expected = self.encoders.get(kind, {}).get("weights_sha256")
        if expected and encoder.weights_sha256 != expected:
            raise InvalidModelError(
                f"{kind} encoder {encoder.name!r} has other weights than the model was trained with "
                f"(sha256 {encoder.weights_sha256[:12]}…, expected {expected[:12]}…)"
            )

    def model_id(self) -> str:
        tuned = "-finetuned" if self.text_encoder_weights else ""
        lexical = f"+{self.pair_features}" if self.pair_features else ""
        data = self.training_data_sha256[:12] or "untrained"
        second = self.out_of_domain.get("rows_sha256", "")
        reader = self.pair_reader.get("sha256", "")
        second += f"+pair-reader/{reader[:12]}" if reader else ""
        return f"{self.text_encoder}{tuned}+{self.image_encoder}{lexical}/{self.loss}/{data}" + (
            f"+second-head/{second[:12]}{second[64:]}" if second else ""
        )

    def save(self, directory: Path) -> None:
        from mmscore.io.atomic_write import atomic_write_bytes

        text = json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"
        atomic_write_bytes(Path(directory) / CARD_FILE, text.encode())

    @classmethod
    def load(cls, directory: Path) -> ModelCard:
        path = Path(directory) / CARD_FILE
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise InvalidModelError(f"{directory} is not an mmscore model directory (no {CARD_FILE})") from exc
        except json.JSONDecodeError as exc:
            raise InvalidModelError(f"{path} is not valid JSON: {exc}") from exc
        known = {f for f in cls.__dataclass_fields__}
        try:
            card = cls(**{k: v for k, v in raw.items() if k in known})
        except TypeError as exc:
            raise InvalidModelError(f"{path}: {exc}") from exc
        card.validate()
        return card
