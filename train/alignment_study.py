"""Token-level alignment features (BERTScore-style), measured against the shipped lexical features over seeds.

    .venv/bin/python train/alignment_study.py [SEEDS] [HEADS]

For each pair, the MiniLM token vectors of both texts (the same frozen encoder the head's sentence vectors
come from; [CLS], [SEP] and padding left out) are L2-normalised and matched: precision is the mean over
text_1's tokens of the best cosine in text_2, recall the other way, F their harmonic mean. Also: the share
of tokens with no match above 0.5 each way. These 5 values are appended to ``lexical-v1``'s 15.

Needs ``../shared/data``. Per seed: CV macro-F1, per-class F1, the worst unrelated-photo flip rate of the
folds, and the textbook accuracy, with lexical-v1 alone and with the alignment features added.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
from study_data import one_seed, print_summary, study_data


def token_vectors(encoder, texts: list[str], batch: int = 64) -> list[np.ndarray]:
    """Each text's normalised token vectors (real tokens only, without [CLS] and [SEP])."""
    import keras

    ids = keras.Input((None,), dtype="int32")
    mask = keras.Input((None,), dtype="bool")
    sequence = encoder.backbone({"token_ids": ids, "segment_ids": keras.ops.zeros_like(ids), "padding_mask": mask})
    model = keras.Model([ids, mask], sequence["sequence_output"])
    out = []
    for lo in range(0, len(texts), batch):
        token_ids, padding = (np.asarray(a) for a in encoder.tokenize(texts[lo : lo + batch]))
        seq = np.asarray(model([token_ids, padding]))
        for row in range(len(seq)):
            real = int(padding[row].sum())
            vectors = seq[row, 1 : max(real - 1, 2)]
            out.append(vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12))
    return out


def alignment_features(tokens_1: list[np.ndarray], tokens_2: list[np.ndarray]) -> np.ndarray:
    rows = []
    for a, b in zip(tokens_1, tokens_2, strict=True):
        sim = a @ b.T
        p, r = sim.max(1).mean(), sim.max(0).mean()
        f = 2 * p * r / max(p + r, 1e-9)
        rows.append((p, r, f, (sim.max(1) < 0.5).mean(), (sim.max(0) < 0.5).mean()))
    return np.asarray(rows, np.float32)


def main(seeds: str = "5", heads: str = "1") -> None:
    from mmscore.labels import LABEL_INDEX
    from mmscore.training import TrainOptions

    data = study_data()
    df, book, y = data.df, data.book, data.y
    lexical = {"tweets": data.emb.pair_features, "book": data.book_emb.pair_features}
    started = time.perf_counter()
    aligned = {
        name: alignment_features(
            token_vectors(data.text, list(frame["text_1"])), token_vectors(data.text, list(frame["text_2"]))
        )
        for name, frame in (("tweets", df), ("book", book))
    }
    print(f"alignment features in {time.perf_counter() - started:.0f} s", flush=True)
    for name, values in zip(("precision", "recall", "F"), aligned["tweets"].T, strict=False):
        print(name, {label: round(float(values[y == i].mean()), 3) for label, i in LABEL_INDEX.items()}, flush=True)
    for recipe in ("lexical-v1", "lexical-v1+alignment"):
        with_alignment = recipe.endswith("alignment")
        data.emb.pair_features, data.book_emb.pair_features = (
            np.hstack([lexical[k], aligned[k]]) if with_alignment else lexical[k] for k in ("tweets", "book")
        )
        rows = []
        for seed in range(int(seeds)):
            tic = time.perf_counter()
            options = TrainOptions(seed=seed, heads=int(heads))
            row = {"seed": seed, **one_seed(data, data.emb, y, options)}
            rows.append({**row, "seconds": round(time.perf_counter() - tic)})
            print(json.dumps({"recipe": recipe, **rows[-1]}), flush=True)
        print_summary(recipe, rows)


if __name__ == "__main__":
    main(*sys.argv[1:])
