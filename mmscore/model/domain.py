"""How typical a pair is of the model's training pairs: an in-domain score for every scored row.

A model's probabilities are calibrated only on pairs like the ones it was trained on; on other pairs it can be
confidently wrong (the shipped model labels plain-language pairs NoEntailment at 0.73-0.98). So every row gets a
typicality, from two views of each text, each measured against the training texts:

- **meaning**: the mean cosine similarity of the text's vector (the model's own text encoder, computed anyway
  while scoring) to its :data:`NEIGHBOURS` nearest training texts;
- **form**: the log-likelihood of its surface under the training texts' statistics: length in words, and
  whether it holds a #hashtag, an @mention, a digit, a non-ASCII character (emoji, accents), a link. A reference
  may leave flags out (:func:`counted_flags`): the main head's leaves out links (every training tweet carries a
  t.co link to its media, an artefact rather than content: :data:`MAIN_UNCOUNTED_FLAGS`), the second head's
  counts them (SNLI's sentences never hold one, so a post with a link is unlike them).

Each view is standardised on held-out training texts (cross-fitted: a text is never its own neighbour) and the
two are added; a pair is as typical as its less typical text. ``in_domain_score`` is the share of held-out
training pairs that are less typical (a percentile, 0 to 1); a row is in domain from :data:`CUT_SHARE` up, so
about 95 % of real pairs like the training ones pass. Everything lives in ``domain.npz`` beside the head
(float16 text vectors: 1.9 MB for 1,260 pairs); models without it score as before, with the two columns null.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DOMAIN_FILE = "domain.npz"
NEIGHBOURS = 25
CUT_SHARE = 0.05  # the share of held-out real pairs let fall below the cut
FORM_FLAGS = {  # name -> pattern, in the order of text_form's columns (a new flag goes last: with_every_flag)
    "#": re.compile(r"#\w"),
    "@": re.compile(r"@\w"),
    "digits": re.compile(r"\d"),
    "non-ASCII": re.compile(r"[^\x00-\x7f]"),
    "link": re.compile(r"https?://|www\.", re.IGNORECASE),
}
MAIN_UNCOUNTED_FLAGS = ("link",)  # the flags the main head's reference leaves out (see the module docstring)
MIN_PAIRS = 10


def text_form(texts) -> np.ndarray:
    """``(n, 1 + len(FORM_FLAGS))``: log(1 + words), then 0/1 per flag; a missing text counts as empty."""
    rows = []
    for text in texts:
        text = text or ""
        rows.append([math.log1p(len(text.split())), *(1.0 if p.search(text) else 0.0 for p in FORM_FLAGS.values())])
    return np.asarray(rows, np.float64).reshape(len(rows), 1 + len(FORM_FLAGS))


def with_every_flag(form) -> np.ndarray:
    """Saved :func:`text_form` rows with a column for every flag: a form saved before a flag existed (the link flag
    came last) reads it as absent. Texts are never kept, so it cannot be measured again."""
    form = np.asarray(form, np.float64)
    missing = 1 + len(FORM_FLAGS) - form.shape[1]
    return np.pad(form, ((0, 0), (0, missing))) if missing > 0 else form


def counted_flags(ignored: tuple[str, ...] = ()) -> np.ndarray:
    """``(flags,)`` bool: which of :data:`FORM_FLAGS` a reference counts (all but ``ignored``)."""
    unknown = set(ignored) - set(FORM_FLAGS)
    if unknown:
        raise ValueError(f"unknown form flags {sorted(unknown)}; known: {', '.join(FORM_FLAGS)}")
    return np.array([name not in ignored for name in FORM_FLAGS])


@dataclass(frozen=True)
class FormStats:
    """The training texts' surface statistics: a Gaussian over log(1 + words), a Bernoulli per counted flag."""

    words_mean: float
    words_sd: float
    flag_p: np.ndarray  # (flags,), smoothed away from 0 and 1
    counted: np.ndarray | None = None  # (flags,) bool: the flags that count (None: all)

    @classmethod
    def fit(cls, form: np.ndarray, counted: np.ndarray | None = None) -> FormStats:
        flags = form[:, 1:]
        p = (flags.sum(0) + 1.0) / (len(flags) + 2.0)  # Laplace: an unseen surface is rare, not impossible
        return cls(float(form[:, 0].mean()), float(form[:, 0].std() + 1e-6), p, counted)

    def log_likelihood(self, form: np.ndarray) -> np.ndarray:
        flags = form[:, 1 : 1 + len(self.flag_p)]  # a reference saved before a flag existed does not count it
        per_flag = flags * np.log(self.flag_p) + (1 - flags) * np.log1p(-self.flag_p)
        if self.counted is not None:
            per_flag = per_flag * np.asarray(self.counted, bool)
        return per_flag.sum(1) - 0.5 * ((form[:, 0] - self.words_mean) / self.words_sd) ** 2

    def counted_names(self) -> list[str]:
        counted = np.ones(len(self.flag_p), bool) if self.counted is None else np.asarray(self.counted, bool)
        return [name for name, kept in zip(FORM_FLAGS, counted, strict=False) if kept]


def unit(vectors) -> np.ndarray:
    """Rows scaled to length 1 (MiniLM's already are; a preset encoder's pooled vectors may not be)."""
    vectors = np.asarray(vectors, np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def _meaning(vectors: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Mean cosine similarity of each vector to its nearest reference vectors (unit rows)."""
    k = min(NEIGHBOURS, len(reference))
    sims = unit(vectors) @ np.asarray(reference, np.float32).T
    return np.partition(sims, sims.shape[1] - k, axis=1)[:, -k:].mean(1).astype(np.float64)


@dataclass(frozen=True)
class DomainReference:
    """What scoring needs to place a pair among the training pairs (see the module docstring)."""

    text_vectors: np.ndarray  # (m, d) unit vectors of the training texts, both sides
    form: FormStats
    meaning_mean: float
    meaning_sd: float
    form_mean: float
    form_sd: float
    held_out: np.ndarray  # sorted typicality of every training pair, each computed without its own fold

    @property
    def cut_rank(self) -> int:
        """In domain: at least this many held-out pairs are less typical (integer, so the cut is exact)."""
        return math.ceil(CUT_SHARE * len(self.held_out))

    def _text_typicality(self, vectors, texts, form: FormStats | None = None, reference=None) -> np.ndarray:
        meaning = _meaning(vectors, self.text_vectors if reference is None else reference)
        surface = (form or self.form).log_likelihood(text_form(texts))
        return (meaning - self.meaning_mean) / self.meaning_sd + (surface - self.form_mean) / self.form_sd

    def typicality(self, vectors_1, vectors_2, texts_1, texts_2) -> np.ndarray:
        """Per pair, the typicality of its less typical text."""
        return np.minimum(self._text_typicality(vectors_1, texts_1), self._text_typicality(vectors_2, texts_2))

    def score(self, vectors_1, vectors_2, texts_1, texts_2) -> tuple[np.ndarray, np.ndarray]:
        """``(in_domain_score float32, in_domain bool)`` per pair."""
        if len(texts_1) == 0:
            return np.zeros(0, np.float32), np.zeros(0, bool)
        return self.place(self.typicality(vectors_1, vectors_2, texts_1, texts_2))

    def place(self, typicality: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Typicalities -> ``(share of held-out pairs less typical, in domain)``; the cut is on integer counts."""
        below = np.searchsorted(self.held_out, typicality, "left")
        return (below / len(self.held_out)).astype(np.float32), below >= self.cut_rank

    def card_facts(self, encoder: str) -> dict:
        return {
            "fitted_on": f"{encoder} vectors and the surface of the {len(self.held_out)} training pairs' texts",
            "method": f"meaning (mean cosine to {NEIGHBOURS} nearest training texts) + form (length, "
            f"{', '.join(self.form.counted_names())}), standardised on held-out folds; a pair is its less typical text",
            "reference_texts": int(len(self.text_vectors)),
            "held_out_pairs": int(len(self.held_out)),
            "cut_rank": self.cut_rank,
            "cut": f"in_domain_score >= {self.cut_rank}/{len(self.held_out)} (about {1 - CUT_SHARE:.0%} of "
            "held-out training pairs pass)",
        }

    def arrays(self) -> dict[str, np.ndarray]:
        """What is saved (float16 text vectors): :meth:`from_arrays` reads it back, nothing is refitted."""
        counted = {} if self.form.counted is None else {"counted_flags": np.asarray(self.form.counted, bool)}
        return {
            "text_vectors": self.text_vectors.astype(np.float16),
            "flag_p": self.form.flag_p,
            **counted,
            "stats": np.array(
                [self.form.words_mean, self.form.words_sd, self.meaning_mean, self.meaning_sd]
                + [self.form_mean, self.form_sd]
            ),
            "held_out": self.held_out,
        }

    @classmethod
    def from_arrays(cls, z) -> DomainReference:
        words_mean, words_sd, meaning_mean, meaning_sd, form_mean, form_sd = (float(x) for x in z["stats"])
        return cls(
            np.asarray(z["text_vectors"]).astype(np.float32),
            FormStats(words_mean, words_sd, np.asarray(z["flag_p"]), _saved_counted(z)),
            meaning_mean,
            meaning_sd,
            form_mean,
            form_sd,
            np.sort(np.asarray(z["held_out"])),
        )

    def save(self, path: Path) -> None:
        np.savez_compressed(path, **self.arrays())

    @classmethod
    def load(cls, path: Path) -> DomainReference:
        with np.load(path, allow_pickle=False) as z:
            return cls.from_arrays(z)


def _saved_counted(z) -> np.ndarray | None:
    """The saved flags that count; None (all) for a reference saved before references could leave one out."""
    return np.asarray(z["counted_flags"], bool) if "counted_flags" in z else None


def fit_domain(vectors_1, vectors_2, texts_1, texts_2, folds: np.ndarray) -> DomainReference | None:
    """The reference for pairs ``(texts_1[i], texts_2[i])`` with their text vectors, cross-fitted over ``folds``
    (a fold id per pair): each pair's held-out typicality uses only the other folds' texts and statistics.
    None when there are too few pairs to have neighbours."""
    return fit_domain_forms(vectors_1, vectors_2, text_form(list(texts_1)), text_form(list(texts_2)), folds)


def fit_domain_forms(vectors_1, vectors_2, form_1, form_2, folds: np.ndarray, counted=None) -> DomainReference | None:
    """:func:`fit_domain` from the texts' :func:`text_form` rows (what a model keeps of texts it cannot ship);
    ``counted``: the flags it counts (:func:`counted_flags`; None: all)."""
    fitted = fit_domain_held_out(vectors_1, vectors_2, form_1, form_2, folds, counted)
    return None if fitted is None else fitted[0]


def fit_domain_held_out(vectors_1, vectors_2, form_1, form_2, folds: np.ndarray, counted=None):
    """:func:`fit_domain_forms`, with each pair's own held-out typicality in row order (what cross-validation
    needs to know which training pairs scoring would have called out of domain): ``(reference, typicality)``."""
    vectors_1, vectors_2, folds = unit(vectors_1), unit(vectors_2), np.asarray(folds)
    form_1, form_2 = np.asarray(form_1, np.float64), np.asarray(form_2, np.float64)
    if len(vectors_1) < MIN_PAIRS or len(np.unique(folds)) < 2:
        return None
    raw = np.zeros((2, len(vectors_1), 2))  # (side, pair, [meaning, form]) before standardising
    for fold in np.unique(folds):
        held, rest = folds == fold, folds != fold
        reference = np.concatenate([vectors_1[rest], vectors_2[rest]])
        stats = FormStats.fit(np.concatenate([form_1[rest], form_2[rest]]), counted)
        for side, (vectors, form) in enumerate(((vectors_1, form_1), (vectors_2, form_2))):
            raw[side, held, 0] = _meaning(vectors[held], reference)
            raw[side, held, 1] = stats.log_likelihood(form[held])
    mean, sd = raw.reshape(-1, 2).mean(0), raw.reshape(-1, 2).std(0) + 1e-9
    held_out = ((raw - mean) / sd).sum(2).min(0)
    reference = DomainReference(
        np.concatenate([vectors_1, vectors_2]),
        FormStats.fit(np.concatenate([form_1, form_2]), counted),
        float(mean[0]),
        float(sd[0]),
        float(mean[1]),
        float(sd[1]),
        np.sort(held_out),
    )
    return reference, held_out


def load_domain(directory: Path | None) -> DomainReference | None:
    """The model directory's reference, or None for a model trained before (or without) one."""
    if directory is None or not (Path(directory) / DOMAIN_FILE).is_file():
        return None
    return DomainReference.load(Path(directory) / DOMAIN_FILE)
