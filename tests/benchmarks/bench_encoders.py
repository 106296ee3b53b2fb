"""What the reference example's encoders cost here: BERT-base and ResNet50V2 sized keras-hub presets (random
weights: same shapes, same FLOPs, no download) against the registered defaults, on real tweet texts.

    .venv/bin/python tests/benchmarks/bench_encoders.py [TEXTS]

Prints texts/s and images/s for each encoder and the estimated encoding time of the 1,260 training pairs
(2,520 texts; images: the 64 unrelated photos x 5 views + 16 probes).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
TWEETS = ROOT.parent / "shared" / "data" / "tweets" / "tweets_trainval.csv"
TRAINING_TEXTS, TRAINING_IMAGES = 2520, 48 * 5 + 16


def _texts(n: int) -> list[str]:
    import pandas as pd

    if TWEETS.is_file():
        frame = pd.read_csv(TWEETS, dtype=str)
        return list((frame["text_1"].tolist() + frame["text_2"].tolist())[:n])
    print(f"(real tweets not found at {TWEETS}: invented texts of tweet length)")
    return [" ".join(["word"] * 45) + f" {i}" for i in range(n)]


def _bert_base(folder: Path) -> str:
    import keras_hub

    from mmscore.encoders.text_minilm import model_dir

    vocabulary = (model_dir() / "vocab.txt").read_text().splitlines()
    keras_hub.models.BertBackbone(
        vocabulary_size=len(vocabulary),
        num_layers=12,
        num_heads=12,
        hidden_dim=768,
        intermediate_dim=3072,
        max_sequence_length=512,
    ).save_to_preset(folder)
    tokenizer = keras_hub.tokenizers.BertTokenizer(vocabulary=vocabulary, lowercase=True)
    keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=128).save_to_preset(folder)
    return str(folder)


def _resnet_50_v2(folder: Path) -> str:
    import keras_hub

    keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[7],
        stackwise_num_filters=[64, 128, 256, 512],
        stackwise_num_blocks=[3, 4, 6, 3],
        stackwise_num_strides=[1, 2, 2, 2],
        block_type="bottleneck_block",
        use_pre_activation=True,
        image_shape=(None, None, 3),
    ).save_to_preset(folder)
    keras_hub.layers.ResNetImageConverter(image_size=(224, 224), scale=1 / 255.0).save_to_preset(folder)
    return str(folder)


def _rate(encode, items, repeats: int = 2) -> float:
    encode(items[:8])  # build and trace outside the clock
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        encode(items)
        best = min(best, time.perf_counter() - started)
    return len(items) / best


def main(n_texts: int = 256) -> None:
    from mmscore.encoders import registry

    texts = _texts(n_texts)
    images = np.random.default_rng(0).integers(0, 255, (64, 224, 224, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        encoders = {
            "minilm-l6-v2 (default)": (registry.build_text_encoder(), texts),
            "BERT-base sized preset": (registry.build_text_encoder(_bert_base(Path(tmp) / "bert")), texts),
            "mobilenet-v2-imagenet (default)": (registry.image_encoder(), images),
            "ResNet50V2 sized preset": (registry.image_encoder(_resnet_50_v2(Path(tmp) / "resnet")), images),
        }
        print(f"{'encoder':34} {'items/s':>9} {'training set':>13}")
        for name, (encoder, items) in encoders.items():
            rate = _rate(encoder.encode, items)
            total = TRAINING_TEXTS if items is texts else TRAINING_IMAGES
            print(f"{name:34} {rate:9.1f} {total / rate:11.0f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 256)
