"""The second head: labels the pairs unlike the main head's training pairs, from what any pair of sentences shows.

The main head learned the training tweets' habits (a near-copy repost is Implies, the same template with
other numbers is Contradictory) and is confidently wrong on plain language. The second head is a multinomial
logistic regression over features every sentence pair has: the absolute difference of the two (unit) text
vectors, their cosine, and the ``lexical-v2`` word features (negation mismatch, antonyms, numbers). It is
fitted on labelled pairs unlike the training tweets (the shipped model: the invented plain-language pairs of
``sample_data/plain_pairs.csv``; an extended model: those plus the user's new rows), and keeps those rows
(vectors, surface forms, word features; never texts), so an extension can refit it.

**Routing.** A row goes to the second head when the main in-domain reference rejects it *and* it is more
typical of the second head's pairs than of the main head's: each head's pairs have their own reference
(:mod:`mmscore.model.domain`), and the two ``in_domain_score`` percentiles are compared. An atypical tweet
stays with the main head (it is even less like plain sentences); a plain sentence pair goes to the second.
Photos play no part in the second head: such rows are judged on their texts.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from mmscore.errors import InvalidModelError, first_line
from mmscore.labels import LABELS
from mmscore.model.domain import DomainReference, fit_domain_held_out, text_form, unit
from mmscore.model.pair_features import V2, pair_features

OUT_OF_DOMAIN_FILE = "out_of_domain.npz"
LEXICAL = V2  # the word features it sees (fixed: a kept row's features must mean the same when refitted)
STRENGTH = 0.3  # inverse L2 strength; chosen by grouped CV on the plain pairs (train/README.md)
FOLDS = 5


@dataclass(frozen=True)
class SecondRows:
    """The labelled pairs the second head learns from, as it keeps them."""

    vectors_1: np.ndarray  # (n, d) unit text vectors
    vectors_2: np.ndarray
    form_1: np.ndarray  # (n, f) mmscore.model.domain.text_form of each text
    form_2: np.ndarray
    lexical: np.ndarray  # (n, DIMS[LEXICAL]) word features of the pair
    labels: np.ndarray  # (n,) label indices
    weights: np.ndarray  # (n,) how often each row counts
    folds: np.ndarray  # (n,) held-out folds: pairs sharing their first text share a fold

    @classmethod
    def of_pairs(cls, vectors_1, vectors_2, texts_1, texts_2, labels, weight: float = 1.0) -> SecondRows:
        texts_1, texts_2 = list(texts_1), list(texts_2)
        firsts = {text: i for i, text in enumerate(dict.fromkeys(texts_1))}
        return cls(
            unit(vectors_1),
            unit(vectors_2),
            text_form(texts_1),
            text_form(texts_2),
            pair_features(texts_1, texts_2, LEXICAL),
            np.asarray(labels, np.int64),
            np.full(len(texts_1), float(weight)),
            np.array([firsts[text] % FOLDS for text in texts_1], np.int64),
        )

    @classmethod
    def concatenate(cls, parts: list[SecondRows]) -> SecondRows:
        names = cls.__dataclass_fields__
        return cls(**{name: np.concatenate([getattr(p, name) for p in parts]) for name in names})

    def __len__(self) -> int:
        return len(self.labels)

    def inputs(self, rows=slice(None)) -> np.ndarray:
        return second_head_inputs(self.vectors_1[rows], self.vectors_2[rows], self.lexical[rows])

    def subset(self, rows) -> SecondRows:
        return SecondRows(**{name: getattr(self, name)[rows] for name in self.__dataclass_fields__})


def second_head_inputs(vectors_1, vectors_2, lexical) -> np.ndarray:
    """``(n, d + 1 + lexical)`` float32: |u - v|, cos(u, v), then the word features."""
    u, v = unit(vectors_1), unit(vectors_2)
    return np.hstack([np.abs(u - v), (u * v).sum(1, keepdims=True), lexical]).astype(np.float32)


def pair_inputs(vectors_1, vectors_2, texts_1, texts_2) -> np.ndarray:
    """:func:`second_head_inputs` of scored pairs: their text vectors and texts."""
    return second_head_inputs(vectors_1, vectors_2, pair_features(list(texts_1), list(texts_2), LEXICAL))


@dataclass(frozen=True)
class OutOfDomainHead:
    """A fitted second head and the rows it was fitted on."""

    rows: SecondRows
    mean: np.ndarray  # (k,) standardisation of the inputs
    scale: np.ndarray  # (k,)
    coef: np.ndarray  # (labels, k)
    intercept: np.ndarray  # (labels,)

    @classmethod
    def fit(cls, rows: SecondRows) -> OutOfDomainHead:
        """Balanced labels (each weighs the same in total), standardised inputs, L2 at :data:`STRENGTH`."""
        from sklearn.linear_model import LogisticRegression

        inputs, labels, weights = rows.inputs(), rows.labels, rows.weights
        present = np.unique(labels)
        if len(present) < 2:
            raise ValueError("the second head needs labelled pairs of at least two labels")
        per_label = np.bincount(labels, weights, minlength=len(LABELS))
        balanced = weights * (weights.sum() / (len(present) * per_label[labels]))
        mean, scale = inputs.mean(0), inputs.std(0) + 1e-6
        model = LogisticRegression(C=STRENGTH, max_iter=5000).fit((inputs - mean) / scale, labels, balanced)
        coef = np.zeros((len(LABELS), inputs.shape[1]), np.float64)
        intercept = np.full(len(LABELS), -1e9)  # a label it never saw is never predicted
        if len(present) == 2:  # sklearn keeps one row for two labels: the second's logit against the first's
            coef[present[1]], intercept[present[1]], intercept[present[0]] = model.coef_[0], model.intercept_[0], 0.0
        else:
            coef[present], intercept[present] = model.coef_, model.intercept_
        return cls(rows, mean, scale, coef, intercept)

    def probabilities(self, inputs: np.ndarray) -> np.ndarray:
        logits = ((np.asarray(inputs, np.float64) - self.mean) / self.scale) @ self.coef.T + self.intercept
        logits -= logits.max(1, keepdims=True)
        e = np.exp(logits)
        return (e / e.sum(1, keepdims=True)).astype(np.float32)

    @cached_property
    def reference(self) -> DomainReference | None:
        """How typical a pair is of this head's pairs (None with too few of them to have neighbours)."""
        r = self.rows
        fitted = fit_domain_held_out(r.vectors_1, r.vectors_2, r.form_1, r.form_2, r.folds)
        return None if fitted is None else fitted[0]

    def takes(self, main_score, main_in_domain, vectors_1, vectors_2, texts_1, texts_2) -> np.ndarray:
        """Which rows this head labels: out of the main domain, and more typical of this head's pairs (only the
        rows out of the main domain are placed among its pairs: in-domain rows never come here)."""
        taken = ~np.asarray(main_in_domain, bool)
        rows = np.flatnonzero(taken)
        if self.reference is None or not len(rows):
            return taken
        picked = [[texts[i] for i in rows] for texts in (texts_1, texts_2)]
        score, _ = self.reference.score(vectors_1[rows], vectors_2[rows], *picked)
        taken[rows] = score > np.asarray(main_score, np.float32)[rows]
        return taken

    def judge(self, probs, domain, vectors_1, vectors_2, texts_1, texts_2) -> tuple[np.ndarray, np.ndarray]:
        """``(probs, taken)``: the main head's ``probs`` with the rows this head :meth:`takes` relabelled by it,
        and which rows those are. ``domain``: the rows' ``(in_domain_score, in_domain)`` under the main reference.
        What scoring does per chunk, and what training reports as the routing of its own pairs."""
        taken = self.takes(*domain, vectors_1, vectors_2, texts_1, texts_2)
        rows = np.flatnonzero(taken)
        if not len(rows):
            return probs, taken
        picked = [[texts[i] for i in rows] for texts in (texts_1, texts_2)]
        probs = np.array(probs, copy=True)
        probs[rows] = self.probabilities(pair_inputs(vectors_1[rows], vectors_2[rows], *picked))
        return probs, taken

    def held_out_predictions(self) -> np.ndarray | None:
        """Each of its rows labelled by a head fitted without that row's fold; None with a single fold."""
        folds = np.unique(self.rows.folds)
        if len(folds) < 2:
            return None
        pred = np.zeros(len(self.rows), np.int64)
        for fold in folds:
            test = self.rows.folds == fold
            kept = self.rows.subset(~test)
            if len(np.unique(kept.labels)) < 2:
                return None
            pred[test] = OutOfDomainHead.fit(kept).probabilities(self.rows.inputs(test)).argmax(1)
        return pred

    def card_facts(self) -> dict:
        counts = np.bincount(self.rows.labels, minlength=len(LABELS))
        digest = hashlib.sha256()
        for name in SecondRows.__dataclass_fields__:
            digest.update(np.ascontiguousarray(getattr(self.rows, name)).tobytes())
        return {
            "rows_sha256": digest.hexdigest(),  # the model id names it: another second head, another model
            "method": f"logistic regression on |u-v|, cos and {LEXICAL} of the two texts (C={STRENGTH}, balanced "
            "labels); labels the rows the in-domain reference rejects that are more typical of its own pairs",
            "rows": int(len(self.rows)),
            "rows_per_label": {label: int(c) for label, c in zip(LABELS, counts, strict=True)},
        }

    def save(self, handle) -> None:
        kept = {name: getattr(self.rows, name) for name in SecondRows.__dataclass_fields__}
        kept.update(mean=self.mean, scale=self.scale, coef=self.coef, intercept=self.intercept)
        np.savez_compressed(handle, **kept)

    @classmethod
    def load(cls, path: Path) -> OutOfDomainHead:
        with np.load(path, allow_pickle=False) as z:
            rows = SecondRows(**{name: z[name] for name in SecondRows.__dataclass_fields__})
            return cls(rows, z["mean"], z["scale"], z["coef"], z["intercept"])


def load_out_of_domain(directory: Path | None) -> OutOfDomainHead | None:
    """The model directory's second head, or None for a model without one."""
    path = None if directory is None else Path(directory) / OUT_OF_DOMAIN_FILE
    if path is None or not path.is_file():
        return None
    try:
        return OutOfDomainHead.load(path)
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as exc:  # a damaged or foreign file: one line
        raise InvalidModelError(f"{path}: not a second head this version can read ({first_line(exc, 200)})") from exc
