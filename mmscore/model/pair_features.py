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

NAME = "lexical-v1"  # recorded in the model card; change it whenever a feature changes
KNOWN = (NAME,)
DIM = 15
# difflib is quadratic in the worst case: compare at most this many characters of each text.
COMPARED_CHARS = 1000

_URL = re.compile(r"https?://\S+")
_TOKEN = re.compile(r"[a-z0-9#@]+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_MENTION = re.compile(r"@\w+")
_HASHTAG = re.compile(r"#\w+")


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / max(1, len(a | b))


def _one_pair(a: str, b: str) -> list[float]:
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
    ]


def pair_features(text_1: Sequence[str | None], text_2: Sequence[str | None], name: str = NAME) -> np.ndarray:
    """``(n, DIM)`` float32 features of each pair; an empty or missing text counts as ``""``."""
    if name not in KNOWN:
        raise ValueError(f"unknown pair feature set {name!r}; known: {', '.join(KNOWN)}")
    rows = [_one_pair(a or "", b or "") for a, b in zip(text_1, text_2, strict=True)]
    return np.asarray(rows, np.float32).reshape(len(rows), DIM)
