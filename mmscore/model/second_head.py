"""The second head: labels the pairs unlike the main head's training pairs, from what the pair reader reads.

The main head learned the training tweets' habits (a near-copy repost is Implies, the same template with
other numbers is Contradictory) and is confidently wrong on plain language. The second head reads the pair
with the **pair reader** (:mod:`mmscore.model.pair_reader`, a cross-encoder trained on SNLI) and maps its
entailment / neutral / contradiction onto mmscore's labels (:func:`mapped`):

- entailment -> Implies;
- contradiction -> Contradictory only as far as both texts speak of the same thing, ``r = sigmoid(a cos + b)`` of
  the two sentence vectors' cosine (in SNLI a hypothesis about another scene is a contradiction; in mmscore it
  is NoEntailment); the rest of it -> NoEntailment;
- neutral -> NoEntailment.

``a, b`` are fitted on which pairs are about the same scene; a scale and a shift per label on the log of the three
mapped probabilities then calibrate them to the labelled rows (so a user's rows can still teach it, and the rule
above cannot be turned around: :func:`fit_calibration`).

It is fitted on SNLI pairs the pair reader never trained on (its dev split), plus pairs built by joining texts
of different captions, NoEntailment by construction; an extended model adds the user's new rows. It keeps those
rows as numbers (vectors, the reader's outputs, labels; never a text), so an extension can refit it.

**Routing** (:func:`route`). A row goes to the second head when it is more typical of the second head's own pairs
than of the main head's: each head has its own saved reference (:mod:`mmscore.model.domain`), and the two
``in_domain_score`` percentiles compare. The second head's reference does not count digits (SNLI's captions
rarely hold one; plain language does) and counts links (every real tweet holds one, SNLI's sentences never do).
On real pairs (``train/routing_study.py``, 5 seeds): no held-out tweet is taken, CV macro-F1 unchanged (sending
the 63 out of domain instead: 0.566 -> 0.559 ± 0.007), and 91 % of SNLI's own pairs holding a digit are (53 %
when digits counted). A model without a second reference takes every row out of the main domain. Photos play no
part in the second head: such rows are judged on their texts.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from mmscore.errors import InvalidModelError, first_line
from mmscore.labels import LABELS
from mmscore.model.domain import DomainReference, counted_flags, fit_domain_forms, text_form, unit, with_every_flag

SECOND_HEAD_FILE = "out_of_domain.npz"
STRENGTH = 1.0  # inverse strength of the calibration's pull towards the plain mapping (thousands of rows: weak)
FLOOR = 1e-6  # the reader's probabilities are clipped here before the log (a kept row never holds -inf)
FOLDS = 5
# Its reference does not count digits: SNLI's captions rarely hold one (1.7 % of pairs) and plain language often
# does, so counted, a number alone kept 47 % of SNLI's own pairs with a digit away from this head. It counts links:
# SNLI's sentences never hold one and every real tweet does, so no tweet reaches it (train/routing_study.py)
UNCOUNTED_FLAGS = ("digits",)


@dataclass(frozen=True)
class SecondRows:
    """The labelled pairs the second head learns from, as it keeps them."""

    vectors_1: np.ndarray  # (n, d) unit text vectors
    vectors_2: np.ndarray
    form_1: np.ndarray  # (n, f) mmscore.model.domain.text_form of each text (its reference's surface statistics)
    form_2: np.ndarray
    nli: np.ndarray  # (n, 3) the pair reader's probabilities: entailment, neutral, contradiction
    related: np.ndarray  # (n,) 1: both texts about the same thing, 0: not, -1: not known (taken from the label)
    labels: np.ndarray  # (n,) label indices
    weights: np.ndarray  # (n,) how often each row counts
    folds: np.ndarray  # (n,) held-out folds: pairs sharing their first text share a fold

    @classmethod
    def of_pairs(
        cls, vectors_1, vectors_2, texts_1, texts_2, labels, nli, weight: float = 1.0, related=None
    ) -> SecondRows:
        """``nli``: the pair reader's ``(n, 3)`` probabilities of the pairs; ``related``: which pairs are about the
        same thing, where known (pairs built from two scenes: 0)."""
        texts_1, texts_2 = list(texts_1), list(texts_2)
        firsts = {text: i for i, text in enumerate(dict.fromkeys(texts_1))}
        return cls(
            unit(vectors_1),
            unit(vectors_2),
            text_form(texts_1),
            text_form(texts_2),
            np.asarray(nli, np.float32).reshape(len(texts_1), 3),
            np.full(len(texts_1), -1.0) if related is None else np.asarray(related, np.float64),
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

    def subset(self, rows) -> SecondRows:
        return SecondRows(**{name: getattr(self, name)[rows] for name in self.__dataclass_fields__})


def mapped(cos, nli, relatedness) -> np.ndarray:
    """``(n, 3)`` in label order (Contradictory, Implies, NoEntailment): the reader's contradiction times
    ``r = sigmoid(a cos + b)``, its entailment, and its neutral plus the unrelated part of its contradiction."""
    a, b = (float(x) for x in relatedness)
    p = np.clip(np.asarray(nli, np.float64).reshape(-1, 3), 0.0, 1.0)
    r = 1.0 / (1.0 + np.exp(-(a * np.asarray(cos, np.float64) + b)))
    entailment, neutral, contradiction = p[:, 0], p[:, 1], p[:, 2]
    return np.stack([contradiction * r, entailment, neutral + contradiction * (1.0 - r)], 1)


def cosine(vectors_1, vectors_2) -> np.ndarray:
    return (unit(vectors_1) * unit(vectors_2)).sum(1).astype(np.float64)


def calibrated(log_mapped, scale, shift) -> np.ndarray:
    """Probabilities in label order: softmax of ``scale * log(mapped) + shift`` per label (:func:`fit_calibration`)."""
    logits = np.asarray(log_mapped, np.float64) * scale + shift
    logits -= logits.max(1, keepdims=True)
    e = np.exp(logits)
    return (e / e.sum(1, keepdims=True)).astype(np.float32)


def fit_calibration(log_mapped: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(scale, shift)`` per label: logits ``scale * log(mapped) + shift``, fitted for weighted log-loss. Each label's
    logit reads only its own mapped probability, with a positive scale, so the calibration can sharpen, soften and
    shift the mapping but never turn it around (a free linear map learned "no entailment, so Contradictory")."""
    from scipy.optimize import minimize

    x, k = np.asarray(log_mapped, np.float64), log_mapped.shape[1]
    onehot = np.eye(k)[labels]

    def loss(theta):
        scale, shift = np.exp(theta[:k]), theta[k:]
        z = x * scale + shift
        z = z - z.max(1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(1, keepdims=True))
        return -(weights * (onehot * log_p).sum(1)).sum() / weights.sum() + 1e-3 * (theta**2).sum() / STRENGTH

    theta = minimize(loss, np.zeros(2 * k), method="L-BFGS-B").x
    return np.exp(theta[:k]), theta[k:].copy()


def fit_relatedness(cos: np.ndarray, related: np.ndarray) -> np.ndarray:
    """``(a, b)`` of ``sigmoid(a cos + b)``: how likely two texts with this cosine speak of the same thing."""
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(related)) < 2:
        raise ValueError("the second head needs pairs about the same thing and pairs about different things")
    model = LogisticRegression(C=100.0, max_iter=1000).fit(cos.reshape(-1, 1), related.astype(int))
    return np.array([model.coef_[0, 0], model.intercept_[0]])


def route(main_score, main_in_domain, second_score=None) -> np.ndarray:
    """Which rows the second head labels. When it can place rows among its own pairs (``second_score``): the rows
    strictly more typical of its pairs than of the main head's (the two ``in_domain_score`` percentiles; a tie
    stays with the main head), in the main domain or not. Without: every row out of the main domain. The one
    rule that scoring, training's routing figures and extension (which head a new row trains) use."""
    if second_score is None:
        return ~np.asarray(main_in_domain, bool)
    return np.asarray(second_score, np.float32) > np.asarray(main_score, np.float32)


@dataclass(frozen=True)
class SecondHead:
    """A fitted second head and the rows it was fitted on."""

    rows: SecondRows
    relatedness: np.ndarray  # (2,) a, b of r = sigmoid(a cos + b) (see mapped)
    reference: DomainReference | None  # how typical a pair is of its rows (None: too few rows to place one)
    label_scale: np.ndarray  # (labels,) the calibration (see calibrated)
    label_shift: np.ndarray  # (labels,)

    @staticmethod
    def inputs_of(cos, nli, relatedness) -> np.ndarray:
        """The regression's inputs: the log of the :func:`mapped` probabilities."""
        return np.log(np.clip(mapped(cos, nli, relatedness), FLOOR, 1.0)).astype(np.float32)

    def inputs(self, vectors_1, vectors_2, nli) -> np.ndarray:
        return self.inputs_of(cosine(vectors_1, vectors_2), nli, self.relatedness)

    @classmethod
    def fit(cls, rows: SecondRows) -> SecondHead:
        """The mapping (:meth:`fit_mapping`) and this head's own reference, fitted on held-out folds of its rows."""
        relatedness, scale, shift = cls.fit_mapping(rows)
        counted = counted_flags(UNCOUNTED_FLAGS)
        fitted = fit_domain_forms(rows.vectors_1, rows.vectors_2, rows.form_1, rows.form_2, rows.folds, counted)
        return cls(rows, relatedness, fitted, scale, shift)

    @classmethod
    def fit_mapping(cls, rows: SecondRows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(relatedness, scale, shift)``: relatedness on the rows where it is known (else: Implies and
        Contradictory rows count as related), then the calibration with each row counted by its weight (labels
        as common as in the rows: balancing them taught it to call unrelated pairs Contradictory): see
        :func:`fit_calibration`."""
        labels, weights, present = rows.labels, rows.weights, np.unique(rows.labels)
        if len(present) < 2:
            raise ValueError("the second head needs labelled pairs of at least two labels")
        cos = cosine(rows.vectors_1, rows.vectors_2)
        known = rows.related >= 0
        related = rows.related[known] if known.any() else (rows.labels != LABELS.index("NoEntailment")).astype(float)
        relatedness = fit_relatedness(cos[known] if known.any() else cos, related)
        scale, shift = fit_calibration(cls.inputs_of(cos, rows.nli, relatedness), labels, weights)
        shift[np.setdiff1d(np.arange(len(LABELS)), present)] = -1e9  # a label it never saw is never predicted
        return relatedness, scale, shift

    def probabilities(self, inputs: np.ndarray) -> np.ndarray:
        return calibrated(inputs, self.label_scale, self.label_shift)

    def second_scores(self, vectors_1, vectors_2, texts_1, texts_2) -> np.ndarray | None:
        """The rows' ``in_domain_score`` among this head's pairs; None without a reference of its own."""
        if self.reference is None:
            return None
        return self.reference.score(vectors_1, vectors_2, list(texts_1), list(texts_2))[0]

    def takes(self, main_score, main_in_domain, vectors_1, vectors_2, texts_1, texts_2) -> np.ndarray:
        """Which rows this head labels (:func:`route`)."""
        second = self.second_scores(vectors_1, vectors_2, texts_1, texts_2)
        return route(main_score, main_in_domain, second)

    def judge(self, probs, domain, vectors_1, vectors_2, texts_1, texts_2, nli) -> tuple[np.ndarray, np.ndarray]:
        """``(probs, taken)``: the main head's ``probs`` with the rows this head :meth:`takes` relabelled by it,
        and which rows those are. ``domain``: the rows' ``(in_domain_score, in_domain)`` under the main reference;
        ``nli(texts_1, texts_2)``: the pair reader, called on the taken rows only.
        What scoring does per chunk, and what training reports as the routing of its own pairs."""
        taken = self.takes(*domain, vectors_1, vectors_2, texts_1, texts_2)
        rows = np.flatnonzero(taken)
        if not len(rows):
            return probs, taken
        picked = [[texts[i] for i in rows] for texts in (texts_1, texts_2)]
        probs = np.array(probs, copy=True)
        probs[rows] = self.probabilities(self.inputs(vectors_1[rows], vectors_2[rows], nli(*picked)))
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
            relatedness, scale, shift = self.fit_mapping(kept)  # a held-out figure needs no reference refitted
            cos = cosine(self.rows.vectors_1[test], self.rows.vectors_2[test])
            pred[test] = calibrated(self.inputs_of(cos, self.rows.nli[test], relatedness), scale, shift).argmax(1)
        return pred

    def card_facts(self) -> dict:
        counts = np.bincount(self.rows.labels, minlength=len(LABELS))
        digest = hashlib.sha256()
        for name in SecondRows.__dataclass_fields__:
            digest.update(np.ascontiguousarray(getattr(self.rows, name)).tobytes())
        return {
            "rows_sha256": digest.hexdigest(),  # the model id names it: another second head, another model
            "method": "the pair reader's entailment -> Implies, contradiction -> Contradictory as far as the texts are "
            "related (sigmoid of their sentence-vector cosine), the rest -> NoEntailment; each label's log-probability "
            "scaled and shifted for log-loss on its rows",
            "routing": self.routing_rule(),
            "relatedness": {
                "a": float(self.relatedness[0]),
                "b": float(self.relatedness[1]),
                "cosine_at_even_odds": float(-self.relatedness[1] / self.relatedness[0]),
            },  # fmt: skip
            "rows": int(len(self.rows)),
            "rows_per_label": {label: int(c) for label, c in zip(LABELS, counts, strict=True)},
        }

    def routing_rule(self) -> str:
        """Which rows it labels, in words (the card's ``routing``)."""
        if self.reference is None:
            return "every row the main head's in-domain reference rejects"
        form = ", ".join(["length", *self.reference.form.counted_names()])
        return (
            "every row more typical of its own pairs than of the main head's (in_domain_score among its pairs, from "
            f"meaning and form: {form}, strictly above the main one)"
        )

    def save(self, handle) -> None:
        kept = {name: getattr(self.rows, name) for name in SecondRows.__dataclass_fields__}
        kept.update(relatedness=self.relatedness, label_scale=self.label_scale, label_shift=self.label_shift)
        if self.reference is not None:
            kept.update({f"reference/{k}": v for k, v in self.reference.arrays().items()})
        np.savez_compressed(handle, **kept)

    @classmethod
    def load(cls, path: Path) -> SecondHead:
        with np.load(path, allow_pickle=False) as z:
            rows = SecondRows(**{name: z[name] for name in SecondRows.__dataclass_fields__})
            rows = replace(rows, form_1=with_every_flag(rows.form_1), form_2=with_every_flag(rows.form_2))
            saved = {k.split("/", 1)[1]: z[k] for k in z.files if k.startswith("reference/")}
            reference = DomainReference.from_arrays(saved) if saved else None
            return cls(rows, z["relatedness"], reference, z["label_scale"], z["label_shift"])


def load_second_head(directory: Path | None) -> SecondHead | None:
    """The model directory's second head, or None for a model without one."""
    path = None if directory is None else Path(directory) / SECOND_HEAD_FILE
    if path is None or not path.is_file():
        return None
    try:
        return SecondHead.load(path)
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as exc:  # a damaged or foreign file: one line
        raise InvalidModelError(f"{path}: not a second head this version can read ({first_line(exc, 200)})") from exc
