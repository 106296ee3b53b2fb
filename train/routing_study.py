"""Which rows should the second head (the pair reader) take? Candidate routing rules, each measured on real pairs:

- the tweets' cross-validated figures over seeds: every held-out tweet is offered to the router with its
  ``in_domain_score`` from a reference fitted on the other folds; the rows the second head does not take keep the
  main head's out-of-fold label;
- SNLI's own pairs (plain sentences, never tweets): the share the router sends to the second head, over random
  pairs and over pairs holding a digit (1.7 % of SNLI's pairs; plain language holds numbers far more often).

    .venv/bin/python train/routing_study.py [SEEDS] [SNLI_PAIRS]          e.g.  5 1500

Needs ``../shared/data``. A rule is the second head's own reference (which surface flags it counts), whether a row
must also be out of the main domain, and which flags the main head's reference counts. Per seed: rows taken,
macro-F1 and accuracy with routing, labels changed, held-out tweets in domain; then mean ± sd, and the SNLI shares
(taken, and called in the main domain).
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
from study_data import DATA, study_data

# name: (flags the second head's reference leaves out, or None: no reference at all; rows in the main domain offered;
# flags the main head's reference leaves out)
RULES = {
    "links not counted, out of domain only (before)": (("link",), False, ("link",)),
    "digits and links not counted": (("digits", "link"), True, ("link",)),
    "digits not counted, out of domain only": (("digits",), False, ("link",)),
    "digits not counted (shipped)": (("digits",), True, ("link",)),
    "digits and non-ASCII not counted": (("digits", "non-ASCII"), True, ("link",)),
    "every row out of domain": (None, False, ("link",)),
    "main reference: digits not counted either": (("digits",), True, ("link", "digits")),
    "both references: digits and non-ASCII not counted": (
        ("digits", "non-ASCII"), True, ("link", "digits", "non-ASCII")),
}  # fmt: skip


def rule_heads(second) -> dict:
    """Each rule's second head: the shipped mapping with the rule's reference, refitted on the head's own rows."""
    from mmscore.model.domain import counted_flags, fit_domain_forms

    rows, heads = second.rows, {}
    for name, (ignored, _offered, _main) in RULES.items():
        reference = None if ignored is None else fit_domain_forms(
            rows.vectors_1, rows.vectors_2, rows.form_1, rows.form_2, rows.folds, counted_flags(ignored))  # fmt: skip
        heads[name] = replace(second, reference=reference)
    return heads


def offered(name: str, domain: tuple) -> tuple:
    """The rows' ``(in_domain_score, in_domain)`` as the rule sees them: a rule that keeps the main domain's rows
    sees them at the top score (1.0), which no second score beats."""
    score, inside = domain
    return (score, inside) if RULES[name][1] else (np.where(inside, np.float32(1.0), score), inside)


def snli_shares(heads: dict, mains: dict, text, count: int) -> dict:
    """Per rule, the share of SNLI pairs (random ones, and ones holding a digit) the router sends to the second head,
    and the share its main reference calls in domain (SNLI's sentences are never tweets)."""
    snli = pd.read_parquet(DATA / "snli" / "snli_1.0_train_100k.parquet")
    snli = snli[snli["gold_label"] != "-"]
    digit = snli["sentence1"].str.contains(r"\d") | snli["sentence2"].str.contains(r"\d")
    samples = {"random": snli.sample(count, random_state=1), "with a digit": snli[digit].sample(count, random_state=2)}
    shares = {}
    for kind, pairs in samples.items():
        texts = list(pairs["sentence1"]), list(pairs["sentence2"])
        vectors = text.encode(texts[0]), text.encode(texts[1])
        for name, head in heads.items():
            domain = mains[name].score(*vectors, *texts)
            taken = head.takes(*offered(name, domain), *vectors, *texts)
            shares.setdefault(name, {})[f"snli {kind}: share taken"] = round(float(taken.mean()), 3)
            shares[name][f"snli {kind}: share in the main domain"] = round(float(domain[1].mean()), 3)
    return shares


def main(seeds: str = "5", snli_pairs: str = "1500") -> None:
    from mmscore.model.domain import text_form
    from mmscore.model.predictor import DEFAULT_MODEL_DIR, Predictor
    from mmscore.model.second_head import load_second_head
    from mmscore.training import TrainOptions, cross_validate
    from mmscore.training.card import kept_of_training
    from mmscore.training.cross_fitting import RowLayout
    from mmscore.training.second_head import routing_metrics

    data = study_data()
    heads = rule_heads(load_second_head(DEFAULT_MODEL_DIR))
    forms = (text_form(list(data.df["text_1"])), text_form(list(data.df["text_2"])))

    def kept(fold_ids) -> dict:
        """Per rule, the main reference and the tweets' held-out places, fitted once per set of flags it leaves out."""
        fitted = {}
        for *_, main in RULES.values():
            if main not in fitted:
                fitted[main] = kept_of_training(data.emb, forms, data.y, fold_ids, uncounted=main)[:2]
        return {name: fitted[rule[2]] for name, rule in RULES.items()}

    folds = RowLayout.stratified(data.y, TrainOptions(seed=0, heads=1)).fold_ids
    mains = {name: reference for name, (reference, _held_out) in kept(folds).items()}
    print(json.dumps(snli_shares(heads, mains, data.text, int(snli_pairs)), indent=1), flush=True)
    nli = Predictor.load().nli_probabilities
    rows = []
    for seed in range(int(seeds)):
        options = TrainOptions(seed=seed, heads=1)
        layout = RowLayout.stratified(data.y, options)
        _metrics, oof = cross_validate(data.emb, data.y, "focal", options, None, data.plan, layout)
        rows.append({"seed": seed})
        places = kept(layout.fold_ids)
        for name, head in heads.items():
            held_out = places[name][1]
            figures = routing_metrics(oof, data.y, layout, offered(name, held_out), head, data.df, data.emb, nli)
            rows[-1][name] = {**figures, "tweets in domain": int(held_out[1].sum())}
        print(json.dumps(rows[-1]), flush=True)
    flat = pd.json_normalize(rows).drop(columns=["seed"])
    print(json.dumps({k: f"{flat[k].mean():.3f} ± {flat[k].std(ddof=1):.3f}" for k in flat.columns}, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:])
