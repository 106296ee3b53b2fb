"""Extra training pairs built from the training tweets themselves, labelled by construction.

A real tweet is paired with an edit of itself whose relation is known without a person:

- ``number``   (Contradictory): one number, date, time, score or count changed;
- ``negation`` (Contradictory): the first auxiliary verb negated, or an existing negation removed;
- ``antonym``  (Contradictory): one word swapped for its opposite (a small hand-written list);
- ``rewrite``  (Implies): the same tweet lightly rewritten (links, mentions, hashtag marks removed, a
  trailing clause dropped, a word swapped for a synonym);
- ``unrelated`` (NoEntailment): the tweet against another, unrelated tweet.

Half the contradictions also lose their links, mentions and hashtag marks (as rewrites do), so "the same
characters" is not what tells Implies from Contradictory. Each built pair remembers the training row its
tweet came from: cross-validation puts it in that row's fold and trains on it only while that fold is not
the one validated (it is never validated itself).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

KINDS = ("number", "negation", "antonym", "rewrite", "unrelated")
LABEL_OF = {
    "number": "Contradictory",
    "negation": "Contradictory",
    "antonym": "Contradictory",
    "rewrite": "Implies",
    "unrelated": "NoEntailment",
}

# Word pairs whose swap turns a statement into its contradiction (both directions are used).
ANTONYMS = (
    ("win", "lose"), ("won", "lost"), ("wins", "loses"), ("open", "shut"), ("opens", "closes"),
    ("opened", "closed"), ("rise", "fall"), ("rises", "falls"), ("rose", "fell"), ("increase", "decrease"),
    ("increased", "decreased"), ("increases", "decreases"), ("up", "down"), ("higher", "lower"),
    ("more", "fewer"), ("most", "least"), ("before", "after"), ("first", "last"), ("true", "false"),
    ("confirmed", "denied"), ("confirms", "denies"), ("accepted", "rejected"), ("approved", "rejected"),
    ("approves", "rejects"), ("allowed", "banned"), ("legal", "illegal"), ("safe", "dangerous"),
    ("alive", "dead"), ("new", "old"), ("start", "end"), ("starts", "ends"), ("started", "ended"),
    ("begin", "finish"), ("arrived", "left"), ("always", "never"), ("best", "worst"),
    ("good", "bad"), ("happy", "sad"), ("positive", "negative"), ("early", "late"), ("cheap", "expensive"),
    ("full", "empty"), ("strong", "weak"), ("success", "failure"), ("gained", "lost"), ("buy", "sell"),
    ("bought", "sold"), ("hired", "fired"), ("joined", "left"), ("launch", "cancel"), ("launched", "cancelled"),
    ("resumed", "suspended"), ("available", "unavailable"), ("online", "offline"), ("today", "yesterday"),
    ("tonight", "tomorrow"), ("men", "women"), ("north", "south"), ("east", "west"), ("inside", "outside"),
)  # fmt: skip
OPPOSITE = {a: b for a, b in ANTONYMS} | {b: a for a, b in ANTONYMS}

# Swaps that keep the meaning (rewrites): one direction only, the common word to a plainer one.
SYNONYMS = {
    "announced": "said", "announces": "says", "purchase": "buy", "approximately": "about", "around": "about",
    "received": "got", "large": "big", "huge": "big", "tiny": "small", "begins": "starts", "commence": "start",
    "shut": "closed", "assist": "help", "children": "kids", "residents": "people", "citizens": "people",
    "million": "mn", "percent": "%", "additional": "more", "currently": "now", "officials": "authorities",
    "reported": "said", "killed": "dead", "says": "said", "vehicle": "car", "physician": "doctor",
}  # fmt: skip

# "has", "have", "do" are left out: as often main verbs ("go and have a look"), where "not" makes no sense
AUXILIARY = re.compile(r"\b(is|are|was|were|will|can|could|should|would|must)\b", re.I)
NEGATION = re.compile(r"\b(?:not|never|no longer)\s+|\b(\w+)n['’]t\b", re.I)
CONTRACTED = {"wo": "will", "ca": "can", "sha": "shall"}  # won't, can't, shan't
NUMBER = re.compile(r"(?<![\w/@#.])(\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w/])")
LINK = re.compile(r"https?://\S+")
MENTION = re.compile(r"(?<!\w)@\w+:?")


def change_number(text: str, rng: np.random.Generator) -> str | None:
    """One number in ``text`` replaced by another of the same form (thousands commas kept); None: no number."""
    spans = [m for m in NUMBER.finditer(LINK.sub(lambda u: " " * len(u.group()), text))]
    if not spans:
        return None
    m = spans[rng.integers(len(spans))]
    whole = m.group(1)
    value = int(whole.replace(",", ""))
    step = int(rng.choice([1, 2, 3, 5, 10])) if value < 20 else max(1, int(value * rng.uniform(0.1, 0.6)))
    new = value + step if value < 2 or rng.random() < 0.5 else value - step
    shown = f"{new:,}" if "," in whole else str(new)
    return text[: m.start(1)] + shown + text[m.end(1) :]


def negate(text: str, rng: np.random.Generator) -> str | None:
    """An existing negation removed, else ``not`` after the first auxiliary verb; None: neither is possible."""
    if NEGATION.search(text):  # "not " / "never " dropped; "doesn't" -> "does", "won't" -> "will"
        return NEGATION.sub(lambda m: CONTRACTED.get((m.group(1) or "").lower(), m.group(1) or ""), text, count=1)
    m = AUXILIARY.search(text)
    if m is None:
        return None
    return text[: m.end()] + " not" + text[m.end() :]


def swap_antonym(text: str, rng: np.random.Generator) -> str | None:
    """One word swapped for its opposite (case kept); None: no word of :data:`ANTONYMS` in ``text``."""
    words = [m for m in re.finditer(r"\b[A-Za-z]+\b(?!['’])", text) if m.group().lower() in OPPOSITE]
    if not words:
        return None
    m = words[rng.integers(len(words))]
    opposite = OPPOSITE[m.group().lower()]
    shown = opposite.capitalize() if m.group()[0].isupper() else opposite
    return text[: m.start()] + shown + text[m.end() :]


def bare(text: str) -> str:
    """``text`` without links, @mentions, a leading RT and hashtag marks, spaces collapsed."""
    out = re.sub(r"^\s*RT\b:?", "", MENTION.sub("", LINK.sub("", text)).replace("#", ""))
    return re.sub(r"\s+", " ", out).strip()


def rewrite(text: str, rng: np.random.Generator) -> str | None:
    """The same statement lightly rewritten: links and mentions dropped, hashtag marks removed, then one of a
    synonym swap or a dropped trailing clause; None when nothing changed (the tweet is already bare)."""
    out = bare(text)
    words = [m for m in re.finditer(r"[A-Za-z]+", out) if m.group().lower() in SYNONYMS]
    clauses = re.split(r"(?<=\w)[,;:–-]\s+", out)
    if words and rng.random() < 0.5:
        m = words[rng.integers(len(words))]
        out = out[: m.start()] + SYNONYMS[m.group().lower()] + out[m.end() :]
    elif len(clauses) > 1 and len(" ".join(clauses[:-1]).split()) >= 5:
        out = ", ".join(clauses[:-1])
    out = re.sub(r"\s+", " ", out).strip()
    return out if out and out != text.strip() and len(out.split()) >= 3 else None


EDITS: dict[str, Callable[[str, np.random.Generator], str | None]] = {
    "number": change_number,
    "negation": negate,
    "antonym": swap_antonym,
    "rewrite": rewrite,
}


def augmented_pairs(
    text_1: Sequence[str], text_2: Sequence[str], kinds: Sequence[str], per_kind: int, seed: int
) -> pd.DataFrame:
    """Up to ``per_kind`` built pairs of each kind: columns ``text_1``, ``text_2``, ``label``, ``kind`` and
    ``source`` (the training row the tweet came from). Tweets are drawn from both sides of every row."""
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown augmentation kind(s) {sorted(unknown)}; choose from {', '.join(KINDS)}")
    rng = np.random.default_rng(seed)
    tweets = list(text_1) + list(text_2)
    sources = np.tile(np.arange(len(text_1)), 2)
    built = []
    for kind in kinds:
        made = 0
        for i in rng.permutation(len(tweets)):
            if made == per_kind:
                break
            pair = _built(kind, tweets, int(i), rng)
            if pair is not None:
                built.append((*pair, LABEL_OF[kind], kind, int(sources[i])))
                made += 1
    return pd.DataFrame(built, columns=["text_1", "text_2", "label", "kind", "source"])


def _built(kind: str, tweets: list[str], i: int, rng: np.random.Generator) -> tuple[str, str] | None:
    tweet = str(tweets[i])
    if kind == "unrelated":
        other = str(tweets[rng.integers(len(tweets))])
        return (tweet, other) if other.strip() != tweet.strip() else None
    edited = EDITS[kind](tweet, rng)
    if edited is None or edited.strip() == tweet.strip():
        return None
    if kind != "rewrite" and rng.random() < 0.5:  # contradictions that are not near-copies only
        edited = bare(edited) or edited
    return (tweet, edited) if rng.random() < 0.5 else (edited, tweet)
