"""What every recipe study in ``train/`` starts from: the real tweet pairs embedded (cached), the photo plan,
the textbook pairs, and the figures reported per seed (so each study measures the same way)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


@dataclass
class StudyData:
    df: pd.DataFrame  # the real labelled pairs
    y: np.ndarray
    emb: object  # their PairEmbeddings (pair features of lexical-v1)
    plan: object  # the shipped photo plan (unrelated MediaEval photos)
    book: pd.DataFrame  # sample_data/textbook_pairs.csv
    book_y: np.ndarray
    book_emb: object
    text: object  # the encoders and a fetcher, for embedding more pairs
    image: object
    fetcher: object

    def embed(self, frame: pd.DataFrame, lexical: str = "lexical-v1"):
        """More pairs embedded like the real ones (texts only), with their pair features."""
        from mmscore.model.preprocessor import PairPreprocessor
        from mmscore.training import embed_pairs

        emb = embed_pairs(frame, None, self.fetcher, self.text, self.image)
        emb.pair_features = PairPreprocessor(lexical).pair_features(frame["text_1"], frame["text_2"])
        return emb


def study_data(lexical: str = "lexical-v1") -> StudyData:
    from mmscore.encoders import registry
    from mmscore.images.fetcher import build_fetcher
    from mmscore.labels import LABEL_INDEX
    from mmscore.model.preprocessor import PairPreprocessor
    from mmscore.training import embed_pairs, photo_plan, read_labelled_pairs

    df, _ = read_labelled_pairs(DATA / "tweets" / "tweets_trainval.csv")
    images = DATA / "images" / "tweet_images_lowres"
    text, image = registry.text_encoder(), registry.image_encoder()
    fetcher = build_fetcher(offline=True, image_root=images)
    emb = embed_pairs(df, images, fetcher, text, image)
    emb.pair_features = PairPreprocessor(lexical).pair_features(df["text_1"], df["text_2"])
    plan = photo_plan(emb, DATA / "images" / "mediaeval2016", image, None, lambda _m: None)
    book = pd.read_csv(ROOT / "sample_data" / "textbook_pairs.csv", dtype=str)
    data = StudyData(df, np.array([LABEL_INDEX[v] for v in df["label"]]), emb, plan, book,
                     np.array([LABEL_INDEX[v] for v in book["label"]]), None, text, image, fetcher)  # fmt: skip
    data.book_emb = data.embed(book, lexical)
    return data


def one_seed(data: StudyData, emb, y: np.ndarray, options, layout=None) -> dict:
    """Cross-validate the focal recipe on ``emb`` / ``y`` (the real pairs first; ``layout`` for rows after them),
    fit it on every row, and return :func:`seed_figures` (the textbook pairs scored by the fitted model)."""
    from mmscore.training import cross_validate, fit_final, head_logits, tune_offsets

    metrics, oof = cross_validate(emb, y, "focal", options, None, data.plan, layout)
    head = fit_final(emb, y, "focal", options, None, data.plan, lambda _m: None, layout)
    book_pred = (head_logits(head, data.book_emb) + tune_offsets(oof, data.y)).argmax(1)
    return seed_figures(metrics, book_pred, data.book_y)


def seed_figures(metrics: dict, book_pred: np.ndarray, book_y: np.ndarray) -> dict:
    """One seed's figures: CV macro-F1, per-class F1, ECE after calibration, worst and mean photo flip rate
    of the folds, and the textbook accuracy (overall and per label)."""
    from mmscore.labels import LABEL_INDEX

    flips = [f[p]["flip_rate"] for f in metrics["per_fold"] for p in metrics["robustness"]]
    return {
        "macro_f1": metrics["macro_f1"],
        **{f"f1_{k}": v["f1"] for k, v in metrics["per_class"].items()},
        "ece": metrics["calibration"]["after"]["ece"],
        "flip_max_fold": max(flips),
        "flip_mean": float(np.mean(flips)),
        "textbook_accuracy": float((book_pred == book_y).mean()),
        "textbook_per_label": {label: float((book_pred[book_y == i] == i).mean()) for label, i in LABEL_INDEX.items()},
    }


def print_summary(recipe: str, rows: list[dict]) -> None:
    """Mean ± sd over seeds of every figure, and the lowest seed's macro-F1."""
    frame = pd.DataFrame(rows).drop(columns=["seed", "seconds", "textbook_per_label", "built"], errors="ignore")
    summary = {k: f"{frame[k].mean():.3f} ± {frame[k].std(ddof=1):.3f}" for k in frame.columns}
    summary["min macro_f1"] = f"{frame['macro_f1'].min():.3f}"
    print(json.dumps({"recipe": recipe, "summary": summary}), flush=True)
