"""What routing the tweets' out-of-domain rows to the second head (the pair reader) does to the real pairs'
cross-validated figures, over seeds: every held-out tweet the in-domain reference (fitted on the other folds)
rejects is offered to the shipped second head, the rows it does not take keep the main head's out-of-fold label.

    .venv/bin/python train/routing_study.py [SEEDS]          e.g.  5

Needs ``../shared/data``. Per seed, for the shipped rule (a row also more typical of the second head's own pairs:
its saved reference) and for every row out of domain (the same head without that reference): rows out of domain,
rows taken, macro-F1 and accuracy of the main head alone and with routing, labels changed; then mean ± sd.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace

import pandas as pd
from study_data import study_data


def main(seeds: str = "5") -> None:
    from mmscore.model.domain import text_form
    from mmscore.model.predictor import DEFAULT_MODEL_DIR, Predictor
    from mmscore.model.second_head import load_second_head
    from mmscore.training import TrainOptions, cross_validate
    from mmscore.training.card import kept_of_training
    from mmscore.training.cross_fitting import RowLayout
    from mmscore.training.second_head import routing_metrics

    data = study_data()
    second = load_second_head(DEFAULT_MODEL_DIR)
    nli = Predictor.load().nli_probabilities
    # without a reference of its own the second head takes every row out of the main domain (route)
    rules = {"own_reference": second, "every_row_out_of_domain": replace(second, reference=None)}
    forms = (text_form(list(data.df["text_1"])), text_form(list(data.df["text_2"])))
    rows = []
    for seed in range(int(seeds)):
        options = TrainOptions(seed=seed, heads=1)
        layout = RowLayout.stratified(data.y, options)
        _metrics, oof = cross_validate(data.emb, data.y, "focal", options, None, data.plan, layout)
        _domain, held_out, _rows = kept_of_training(data.emb, forms, data.y, layout.fold_ids)
        rows.append({"seed": seed, **{
            rule: routing_metrics(oof, data.y, layout, held_out, head, data.df, data.emb, nli)
            for rule, head in rules.items()
        }})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    flat = pd.json_normalize(rows).drop(columns=["seed"])
    print(json.dumps({k: f"{flat[k].mean():.3f} ± {flat[k].std(ddof=1):.3f}" for k in flat.columns}))


if __name__ == "__main__":
    main(*sys.argv[1:])
