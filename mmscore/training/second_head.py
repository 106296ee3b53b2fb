"""Training the second head (:mod:`mmscore.model.out_of_domain`): the rows it learns from, its held-out figures,
and what routing rows to it does to the cross-validated figures of the main training pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mmscore.labels import LABEL_INDEX, LABELS
from mmscore.metrics import class_metrics
from mmscore.model.out_of_domain import OutOfDomainHead, SecondRows
from mmscore.training.cross_fitting import cross_fitted_labels
from mmscore.training.embeddings import PairEmbeddings


def second_rows(df: pd.DataFrame, emb: PairEmbeddings, weight: float = 1.0) -> SecondRows:
    """Labelled pairs and their embeddings as the second head keeps them, each row counted ``weight`` times."""
    labels = [LABEL_INDEX[v] for v in df["label"]]
    return SecondRows.of_pairs(emb.text_1, emb.text_2, df["text_1"], df["text_2"], labels, weight)


def fit_second_head(parts: list[SecondRows], progress) -> OutOfDomainHead | None:
    """The head fitted on every part together; None without parts, or when they hold a single label."""
    if not parts:
        return None
    rows = SecondRows.concatenate(parts)
    if len(np.unique(rows.labels)) < 2:
        progress("no second head: its rows hold a single label")
        return None
    progress(f"fitting the second head (pairs unlike the training pairs) on {len(rows)} pairs")
    return OutOfDomainHead.fit(rows)


def second_head_facts(head: OutOfDomainHead, source: str | Path | None) -> dict:
    """The card's ``out_of_domain`` entry: what the head is, what it was fitted on, its rows' held-out figures
    (folds keep pairs that share a first text together)."""
    facts = {**head.card_facts(), "pairs_file": str(source) if source else ""}
    pred = head.held_out_predictions()
    if pred is not None:
        held_out = class_metrics(head.rows.labels, pred)
        facts["held_out"] = {k: held_out[k] for k in ("accuracy", "macro_f1", "per_class")}
    return facts


def routing_metrics(oof, y, layout, domain, second: OutOfDomainHead, df, emb) -> dict:
    """Cross-validated figures of the training rows when, as in scoring, the rows the second head takes are
    labelled by it. ``domain``: each row's held-out ``(in_domain_score, in_domain)`` (from the other folds). The
    second head never trained on these rows, so its labels for them are held out too."""
    pred = cross_fitted_labels(oof, y, layout.folds())
    texts = (list(df["text_1"]), list(df["text_2"]))
    judged, taken = second.judge(np.eye(len(LABELS))[pred], domain, emb.text_1, emb.text_2, *texts)
    routed = judged.argmax(1)
    main, both = class_metrics(y, pred), class_metrics(y, routed)
    return {
        "rows_out_of_domain": int((~domain[1]).sum()),
        "rows_taken_by_second_head": int(taken.sum()),
        "main_head_only": {"macro_f1": main["macro_f1"], "accuracy": main["accuracy"]},
        "routed": {"macro_f1": both["macro_f1"], "accuracy": both["accuracy"]},
        "labels_changed": int((routed != pred).sum()),
    }
