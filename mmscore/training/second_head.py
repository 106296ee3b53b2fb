"""Training the second head (:mod:`mmscore.model.second_head`): the rows it learns from, its held-out figures,
and what routing rows to it does to the cross-validated figures of the main training pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mmscore.errors import InputError
from mmscore.labels import LABEL_INDEX, LABELS
from mmscore.metrics import class_metrics
from mmscore.model.second_head import SecondHead, SecondRows
from mmscore.training.cross_fitting import cross_fitted_labels
from mmscore.training.embeddings import PairEmbeddings

SNLI_CREDIT = (
    "SNLI 1.0 (Bowman, Angeli, Potts and Manning, EMNLP 2015), CC BY-SA 4.0: the pair reader and the second head "
    "were trained on its pairs"
)
# SNLI's labels as mmscore's, for pairs about the same scene (pairs of different captions: NoEntailment)
NLI_TO_LABEL = {"entailment": "Implies", "contradiction": "Contradictory", "neutral": "NoEntailment"}


def second_rows(df: pd.DataFrame, emb: PairEmbeddings, nli, weight: float = 1.0) -> SecondRows:
    """Labelled pairs and their embeddings as the second head keeps them, each row counted ``weight`` times;
    ``nli(texts_1, texts_2)``: the pair reader the second head reads with."""
    labels = [LABEL_INDEX[v] for v in df["label"]]
    texts = (list(df["text_1"]), list(df["text_2"]))
    return SecondRows.of_pairs(emb.text_1, emb.text_2, *texts, labels, nli(*texts), weight)


def fit_second_head(parts: list[SecondRows], progress) -> SecondHead | None:
    """The head fitted on every part together; None without parts, or when they hold a single label."""
    if not parts:
        return None
    rows = SecondRows.concatenate(parts)
    if len(np.unique(rows.labels)) < 2:
        progress("no second head: its rows hold a single label")
        return None
    progress(f"fitting the second head (pairs unlike the training pairs) on {len(rows)} pairs")
    return SecondHead.fit(rows)


def second_head_facts(head: SecondHead, source: str | Path | None) -> dict:
    """The card's ``out_of_domain`` entry: what the head is, what it was fitted on, its rows' held-out figures
    (folds keep pairs that share a first text together)."""
    facts = {**head.card_facts(), "pairs_file": str(source) if source else ""}
    pred = head.held_out_predictions()
    if pred is not None:
        held_out = class_metrics(head.rows.labels, pred)
        facts["held_out"] = {k: held_out[k] for k in ("accuracy", "macro_f1", "per_class")}
    return facts


def routing_metrics(oof, y, layout, domain, second: SecondHead, df, emb, nli) -> dict:
    """Cross-validated figures of the training rows when, as in scoring, the rows the second head takes are
    labelled by it. ``domain``: each row's held-out ``(in_domain_score, in_domain)`` (from the other folds). The
    second head never trained on these rows, so its labels for them are held out too."""
    pred = cross_fitted_labels(oof, y, layout.folds())
    texts = (list(df["text_1"]), list(df["text_2"]))
    judged, taken = second.judge(np.eye(len(LABELS))[pred], domain, emb.text_1, emb.text_2, *texts, nli)
    routed = judged.argmax(1)
    main, both = class_metrics(y, pred), class_metrics(y, routed)
    return {
        "rows_out_of_domain": int((~domain[1]).sum()),
        "rows_taken_by_second_head": int(taken.sum()),
        "main_head_only": {"macro_f1": main["macro_f1"], "accuracy": main["accuracy"]},
        "routed": {"macro_f1": both["macro_f1"], "accuracy": both["accuracy"]},
        "labels_changed": int((routed != pred).sum()),
    }


def reader_facts(path: Path) -> dict:
    """The card's ``pair_reader``: the reader file's hash, and what its training recorded (dev accuracy, data)."""
    from mmscore.io.file_hash import file_sha256
    from mmscore.model.pair_reader import read_meta

    facts = read_meta(path).get("facts", {})
    digest = file_sha256(path)
    credit = {"credit": SNLI_CREDIT} if "snli" in str(facts.get("trained_on", "")).lower() else {}
    return {"file": Path(path).name, "sha256": digest, **credit, **facts}


def nli_frame(path: str | Path, dev_share: float, cross_share: float = 0.5, seed: int = 0) -> pd.DataFrame:
    """The dev split of an NLI file (pairs its pair reader never trained on) as mmscore-labelled pairs
    ``text_1, text_2, label``, plus ``cross_share`` as many pairs joining a premise with a hypothesis of another
    group: about something else, so NoEntailment by construction."""
    from mmscore.training.pair_reader import dev_rows, read_nli_frame

    frame = read_nli_frame(str(path))
    frame = frame[frame["label"].isin(NLI_TO_LABEL)].reset_index(drop=True)
    dev = frame[dev_rows(frame["group"].to_numpy(str), dev_share)].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    n_cross = int(cross_share * len(dev))
    first = rng.choice(len(dev), n_cross, replace=False)
    other = rng.permutation(len(dev))[:n_cross]
    apart = dev["group"].to_numpy()[first] != dev["group"].to_numpy()[other]  # never a pair of one scene
    cross = pd.DataFrame(
        {
            "text_1": dev["premise"].to_numpy()[first][apart],
            "text_2": dev["hypothesis"].to_numpy()[other][apart],
            "label": "NoEntailment",
            "related": 0.0,
        }
    )
    same = pd.DataFrame(
        {"text_1": dev["premise"], "text_2": dev["hypothesis"], "label": dev["label"].map(NLI_TO_LABEL), "related": 1.0}
    )
    return pd.concat([same, cross], ignore_index=True)


def rebuild_second_head(nli_data, reader: Path, base: str | Path, out_dir: Path, dev_share: float, progress):
    """A model folder in ``out_dir``: ``base``'s main head, reference and rows as they are, ``reader`` as its
    pair reader, and a second head fitted on the NLI file's dev pairs (plus pairs of different scenes) as read
    by that reader. Returns the new card."""
    from dataclasses import replace

    from mmscore.encoders import registry
    from mmscore.model.pair_reader import PairReader
    from mmscore.training.card import base_model, copy_model_files, now

    base_dir, base_card = base_model(base)
    if Path(out_dir).resolve() == base_dir.resolve():
        raise InputError(f"{out_dir}: write the new model to another folder than its base")
    df = nli_frame(nli_data, dev_share)
    progress(f"reading {len(df)} held-out NLI pairs with the pair reader and the text encoder")
    text = registry.text_encoder(base_card.text_encoder, base_card.sequence_length)
    base_card.check_encoder("text", text)
    vectors = [text.encode(list(df[c])) for c in ("text_1", "text_2")]
    nli = PairReader.load(reader).probabilities
    labels = [LABEL_INDEX[v] for v in df["label"]]
    probs = nli(list(df["text_1"]), list(df["text_2"]))
    rows = SecondRows.of_pairs(*vectors, df["text_1"], df["text_2"], labels, probs, related=df["related"])
    second = fit_second_head([rows], progress)
    card = replace(base_card, trained_at=now())
    card.out_of_domain = second_head_facts(second, Path(nli_data).name)
    card.pair_reader = reader_facts(reader)
    copy_model_files(base_dir, Path(out_dir), second, card, reader)
    return card
