"""Lexical pair features: what two posts share, word for word, number for number.

A bi-encoder embeds each text on its own, so it cannot see that two near-identical tweets differ only
in a count, a score or a list of @mentions, which is exactly where Contradictory and Implies live in
tweet pairs. These few overlap measures add that view. They are plain functions of the two strings
(no fitted state), so training and scoring compute them the same way; the head normalises them.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Sequence

import numpy as np

V1 = "lexical-v1"
V2 = "lexical-v2"  # v1 + negation mismatch, antonym across the texts, same numbers in another order
NAME = V1  # the default set; recorded in the model card; add a new name whenever a feature changes
KNOWN = (V1, V2)
DIMS = {V1: 15, V2: 18}
DIM = DIMS[NAME]
# difflib is quadratic in the worst case: compare at most this many characters of each text.
COMPARED_CHARS = 1000

_URL = re.compile(r"https?://\S+")
_TOKEN = re.compile(r"[a-z0-9#@]+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_MENTION = re.compile(r"@\w+")
_HASHTAG = re.compile(r"#\w+")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
# Words that turn a statement into its opposite. A plain list: the cue is whether one post has one and the
# other has none, not what is negated.
NEGATIONS = frozenset(
    [
        "not",
        "no",
        "never",
        "none",
        "nobody",
        "nothing",
        "neither",
        "nor",
        "cannot",
        "without",
        "isn't",
        "aren't",
        "wasn't",
        "weren't",
        "don't",
        "doesn't",
        "didn't",
        "won't",
        "wouldn't",
        "can't",
        "couldn't",
        "shouldn't",
        "hasn't",
        "haven't",
        "hadn't",
    ]
)
# Common antonym pairs of news and announcements (general English, not taken from any evaluation file).
ANTONYMS = [
    ("open", "closed"), ("open", "close"), ("opens", "closes"), ("open", "shut"), ("win", "lose"), ("won", "lost"),
    ("wins", "loses"), ("victory", "defeat"), ("up", "down"), ("rise", "fall"), ("rises", "falls"),
    ("rose", "fell"), ("higher", "lower"), ("increase", "decrease"), ("increased", "decreased"),
    ("more", "less"), ("more", "fewer"), ("before", "after"), ("early", "late"), ("earlier", "later"),
    ("start", "end"), ("starts", "ends"), ("begin", "finish"), ("first", "last"), ("true", "false"),
    ("alive", "dead"), ("accept", "reject"), ("accepted", "rejected"), ("allow", "ban"), ("allowed", "banned"),
    ("approve", "reject"), ("approved", "rejected"), ("full", "empty"), ("hot", "cold"), ("success", "failure"),
    ("confirm", "deny"), ("confirmed", "denied"), ("pass", "fail"), ("passed", "failed"), ("cheap", "expensive"),
    ("cheaper", "dearer"), ("safe", "dangerous"), ("present", "absent"), ("arrive", "depart"),
    ("arrived", "left"), ("buy", "sell"), ("bought", "sold"), ("add", "remove"), ("added", "removed"),
    ("on", "off"), ("in", "out"), ("yes", "no"), ("always", "never"), ("all", "none"), ("sunny", "rainy"),
    ("wet", "dry"), ("guilty", "innocent"), ("male", "female"), ("old", "new"), ("young", "old"),
    ("resumed", "suspended"), ("resume", "suspend"), ("available", "unavailable"), ("legal", "illegal"),
]  # fmt: skip
_OPPOSITE: dict[str, set[str]] = {}
for _a, _b in ANTONYMS:
    _OPPOSITE.setdefault(_a, set()).add(_b)
    _OPPOSITE.setdefault(_b, set()).add(_a)


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / max(1, len(a | b))


def _contrast(a: str, b: str, nums_a: list[str], nums_b: list[str]) -> list[float]:
    """lexical-v2's additions: one text negated and the other not; a word of one whose antonym is in the other
    only; the same numbers in another order ("won 3-1" / "lost 1-3")."""
    words_a, words_b = set(_WORD.findall(a)), set(_WORD.findall(b))
    negated = bool(words_a & NEGATIONS) != bool(words_b & NEGATIONS)
    only_a, only_b = words_a - words_b, words_b - words_a
    antonym = any(_OPPOSITE.get(w, set()) & only_b for w in only_a)
    reordered = len(nums_a) > 1 and sorted(nums_a) == sorted(nums_b) and nums_a != nums_b
    return [float(negated), float(antonym), float(reordered)]


def _one_pair(a: str, b: str, name: str = NAME) -> list[float]:
    # t.co links are unique per tweet: they carry no shared content, only noise.
    a, b = _URL.sub("", a).strip(), _URL.sub("", b).strip()
    la, lb = a.lower(), b.lower()
    words_a, words_b = set(_TOKEN.findall(la)), set(_TOKEN.findall(lb))
    nums_a, nums_b = set(_NUMBER.findall(a)), set(_NUMBER.findall(b))
    mentions_a, mentions_b = set(_MENTION.findall(la)), set(_MENTION.findall(lb))
    tags_a, tags_b = set(_HASHTAG.findall(la)), set(_HASHTAG.findall(lb))
    ca, cb = la[:COMPARED_CHARS], lb[:COMPARED_CHARS]
    shared = len(words_a & words_b)
    len_a, len_b = np.log1p(len(a)), np.log1p(len(b))
    v2 = _contrast(la, lb, _NUMBER.findall(a), _NUMBER.findall(b)) if name == V2 else []
    return [
        _jaccard(words_a, words_b),
        shared / max(1, len(words_a)),  # how much of text_1 reappears in text_2
        shared / max(1, len(words_b)),  # and the other way round: implication has a direction
        _jaccard(nums_a, nums_b),
        float(bool(nums_a) and bool(nums_b) and not (nums_a & nums_b)),  # both give numbers, none agree
        len(nums_a ^ nums_b) / max(1, len(nums_a | nums_b)),
        _jaccard(mentions_a, mentions_b),
        float(bool(mentions_a | mentions_b)),
        _jaccard(tags_a, tags_b),
        float(bool(tags_a | tags_b)),
        difflib.SequenceMatcher(None, ca, cb).ratio(),
        len(os.path.commonprefix([ca, cb])) / max(1, min(len(ca), len(cb))),
        len_a,
        len_b,
        abs(len_a - len_b),
        *v2,
    ]


def pair_features(text_1: Sequence[str | None], text_2: Sequence[str | None], name: str = NAME) -> np.ndarray:
    """``(n, DIMS[name])`` float32 features of each pair; an empty or missing text counts as ``""``."""
    if name not in KNOWN:
        raise ValueError(f"unknown pair feature set {name!r}; known: {', '.join(KNOWN)}")
    rows = [_one_pair(a or "", b or "", name) for a, b in zip(text_1, text_2, strict=True)]
    return np.asarray(rows, np.float32).reshape(len(rows), DIMS[name])
