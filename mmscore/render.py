"""How the CLI shows things: rich tables and lines for scoring, training and reports.

Rendering only: every figure comes from a library result (:class:`~mmscore.scoring.run.RunSummary`,
:class:`~mmscore.training.TrainResult`, :class:`~mmscore.report.ScoredReport`); nothing here computes one.
"""

from __future__ import annotations

import math

from rich.console import Console, Group
from rich.table import Table


def counts_table(title: str, counts: dict, total: int) -> Table:
    table = Table(title=title)
    table.add_column("value")
    table.add_column("count", justify="right")
    table.add_column("%", justify="right")
    for key, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        table.add_row(str(key), str(n), f"{100 * n / max(total, 1):.1f}")
    return table


def score_with_progress(console: Console, scorer, run, **run_options):
    """``scorer.run(run, ...)`` under a progress bar (rows/s, fetched/cached/failed images) on a terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from mmscore import statuses

    columns = [
        TextColumn("[bold]scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:.1f} rows/s"),
        TextColumn("images fetched {task.fields[fetched]} cached {task.fields[cached]} failed {task.fields[failed]}"),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=console, disable=not console.is_terminal, transient=False) as progress:
        task = progress.add_task("score", total=None, rate=0.0, fetched=0, cached=0, failed=0)

        def on_progress(rows: int, image_statuses) -> None:
            elapsed = progress.tasks[task].elapsed or 1e-9
            done = progress.tasks[task].completed + rows
            failed = sum(n for s, n in image_statuses.items() if statuses.failed(s))
            progress.update(
                task,
                advance=rows,
                rate=done / elapsed,
                fetched=image_statuses.get(statuses.OK, 0),
                cached=image_statuses.get(statuses.CACHED, 0),
                failed=failed,
            )

        def on_start(total: int | None) -> None:
            progress.update(task, total=total)

        return scorer.run(run, on_start=on_start, on_progress=on_progress, **run_options)


def train_with_progress(console: Console, train, options):
    """``train(options, on_progress)`` under a progress bar with pairs/s and the running loss."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [
        TextColumn("[bold]training"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:.0f} pairs/s  loss {task.fields[loss]:.3f}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=console, transient=False) as progress:
        # shown from the first step: resuming a finished run trains nothing and shows no empty bar
        task = progress.add_task("train", total=None, rate=0.0, loss=float("nan"), visible=False)
        start = {"done": None}

        def on_progress(done: int, total: int, loss: float) -> None:
            elapsed = progress.tasks[task].elapsed or 1e-9
            start["done"] = done if start["done"] is None else start["done"]  # resumed pairs are not this run's
            rate = (done - start["done"]) / elapsed
            progress.update(task, completed=done, total=total, loss=loss, rate=rate, visible=True)

        return train(options, on_progress)


def print_score_summary(console: Console, summary, output: str) -> None:
    line = (
        f"scored {summary.rows} rows -> {output} in {summary.seconds:.1f} s ({summary.rows_per_second:.1f} rows/s, "
        f"encoders in {summary.precision}); " + ", ".join(f"{k} {v}" for k, v in sorted(summary.labels.items()))
    )
    if summary.domain.get("out_of_domain") or summary.domain.get("in_domain"):
        line += f"; out of domain {summary.domain.get('out_of_domain', 0)}"
        if summary.domain.get("second_head"):  # mmscore.contract.SECOND_HEAD (kept out: pyarrow is slow to import)
            line += f"; labelled by the second head {summary.domain['second_head']}"
    flagged = {k: v for k, v in summary.text_statuses.items() if k != "ok"}
    if flagged:
        line += "; rows flagged in text_status: " + ", ".join(f"{k} {v}" for k, v in sorted(flagged.items()))
    if not console.is_terminal:
        console.print(line, highlight=False, soft_wrap=True)
        return
    console.print(counts_table("predicted labels", dict(summary.labels), summary.rows - summary.resumed_rows))
    images = sum(summary.image_statuses.values())
    console.print(counts_table("image status", dict(summary.image_statuses), images))
    console.print(line, highlight=False)


def print_training(console: Console, result, folds: int) -> None:
    for name, metrics in result.per_loss.items():
        marker = " (chosen)" if name == result.chosen_loss else ""
        console.print(metrics_table(f"{folds}-fold CV, loss={name}{marker}", metrics))
    console.print(per_fold_table(result.per_loss[result.chosen_loss]))
    for group, metrics in result.per_loss[result.chosen_loss].get("groups", {}).items():
        rows = sum(c["support"] for c in metrics["per_class"].values())
        console.print(
            f"CV on the {group} ({rows}): macro-F1 {metrics['macro_f1']:.3f}, accuracy {metrics['accuracy']:.3f}",
            highlight=False,
        )
    card = result.card
    if card.cv_metrics.get("over_seeds"):
        print_over_seeds(console, card.cv_metrics)
    if card.base:
        base = card.base
        console.print(
            f"extends {base['base_model']}: {base['base_rows']} kept rows + {base['new_rows']} new rows "
            f"(each repeated {base['new_weight']}x): {base['new_rows_main_head']} in the base's domain trained "
            f"its main head, {base['new_rows_second_head']} out of it its second head"
            + (
                " (the main head is the base's, unchanged; the CV above is the base's)"
                if not base["new_rows_main_head"]
                else ""
            ),
            highlight=False,
        )
    if card.out_of_domain:
        print_second_head(console, card.out_of_domain)
    if not card.uses_images:
        console.print(
            f"this model does not use images: {card.image_rows} of {card.training_rows} training rows had one and "
            "no --photos were given (scoring still fetches images and reports their status)"
        )
    console.print(
        f"skipped rows (empty text or label): {result.skipped_rows}; images: "
        + ", ".join(f"{k} {v}" for k, v in sorted(result.image_statuses.items()))
        + f"; encoder calls this run: {dict(result.encoded)}; offsets {card.decision_offsets}; "
        f"temperature {card.temperature:.3f}"
    )


def print_over_seeds(console: Console, cv_metrics: dict) -> None:
    """The CV repeated with other seeds: each seed's macro-F1 and photo flips, then mean ± sd."""
    over = cv_metrics["over_seeds"]

    def spread(figure: dict, scale: float = 1.0, unit: str = "") -> str:
        return f"{scale * figure['mean']:.3f}{unit} ± {scale * figure['sd']:.3f}{unit}"

    flips = [k for k in over if k.startswith("flips_")]
    per_seed = ", ".join(f"{s['macro_f1']:.3f}" for s in cv_metrics["per_seed"])
    line = f"CV over {over['seeds']} seeds: macro-F1 {spread(over['macro_f1'])} (per seed {per_seed})"
    line += "".join(f"; {k[len('flips_') :]} flips {spread(over[k]['all'], 100, '%')}" for k in flips)
    console.print(line, highlight=False)


def print_second_head(console: Console, facts: dict) -> None:
    """What the card says of the second head: its rows, their held-out accuracy, its effect on the training pairs."""
    line = f"second head (rows unlike the main head's pairs): {facts['rows']} pairs"
    if facts.get("held_out"):
        line += (
            f", held-out accuracy {facts['held_out']['accuracy']:.3f} (pairs sharing a first text held out together)"
        )
    routing = facts.get("routing_on_training_pairs")
    if routing:
        line += (
            f"; it takes {routing['rows_taken_by_second_head']} of the training pairs "
            f"({routing['rows_out_of_domain']} are out of domain): CV macro-F1 "
            f"{routing['main_head_only']['macro_f1']:.3f} -> {routing['routed']['macro_f1']:.3f}"
        )
    console.print(line, highlight=False)


def report_devices(console: Console) -> None:
    from mmscore.tensorflow_runtime import import_tensorflow

    tf = import_tensorflow()

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        console.print(f"training on GPU ({len(gpus)} device(s))")
    else:
        console.print("training on CPU")


def per_fold_table(metrics: dict) -> Table:
    """Per fold and overall: macro-F1, calibration before/after the temperature, photo robustness."""
    from mmscore.training import PROBES

    table = Table(title="per fold: calibration (offsets and temperature cross-fitted) and unrelated-photo probe")
    columns = ["fold", "macro-F1", "T", "ECE before → after", "log-loss before → after", "Brier before → after"]
    probes = [p for p in PROBES if p in metrics["robustness"]]
    columns += [f"{p.replace('_', ' ')}: flips / ΔF1" for p in probes]
    for column in columns:
        table.add_column(column, justify="right")

    def row(name, f1, temperature, before, after, robustness):
        cells = [name, f"{f1:.3f}", temperature]
        cells += [f"{before[k]:.3f} → {after[k]:.3f}" for k in ("ece", "log_loss", "brier")]
        cells += [f"{100 * robustness[p]['flip_rate']:.1f}% / {robustness[p]['macro_f1_change']:+.3f}" for p in probes]
        table.add_row(*cells)

    for fold in metrics["per_fold"]:
        t = f"{fold['temperature']:.2f}"
        row(str(fold["fold"]), fold["macro_f1"], t, fold["calibration_before"], fold["calibration_after"], fold)
    calib = metrics["calibration"]
    row("all", metrics["macro_f1"], "", calib["before"], calib["after"], metrics["robustness"])
    return table


def metrics_table(title: str, metrics: dict):
    from mmscore.labels import LABELS

    table = Table(title=title)
    for column in ("class", "precision", "recall", "F1", "support"):
        table.add_column(column, justify="right" if column != "class" else "left")
    for name, m in metrics["per_class"].items():
        table.add_row(name, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", str(m["support"]))
    table.add_row("macro-F1", "", "", f"{metrics['macro_f1']:.3f}", "", style="bold")
    table.add_row("accuracy", "", "", f"{metrics['accuracy']:.3f}", "")
    confusion = Table(title="confusion (rows: gold, columns: predicted)")
    confusion.add_column("gold \\ pred")
    for name in LABELS:
        confusion.add_column(name[:13], justify="right")
    for name, row in zip(LABELS, metrics["confusion"], strict=True):
        confusion.add_row(name, *map(str, row))
    return Group(table, confusion)


def _out_of_domain_labels(domain) -> str:
    """Who labelled the out-of-domain rows: the second head (all, some) or nobody fit for them."""
    out, taken = domain.rows("out"), domain.second_head_out
    if not taken:
        return "On them the labels and confidence say little."
    by = (
        "by its second head (the pair reader, learned from SNLI's photo captions; texts only; weak on other kinds of "
        "sentences)"
    )
    if taken >= out:
        return f"All of them were labelled {by}."
    return f"{taken} of them were labelled {by}; on the rest the labels and confidence say little."


def print_report(console: Console, result) -> None:
    from mmscore.labels import LABELS

    facts = result.run_facts
    console.print(
        f"[bold]{result.path}[/]: {result.rows} rows; model {facts.get('model_id', '?')}, "
        f"mmscore {facts.get('mmscore_version', '?')}, finished {facts.get('finished_at', '?')}, "
        f"{facts.get('rows_per_second', '?')} rows/s",
        highlight=False,
    )
    if result.domain and result.domain.warns:
        console.print(
            f"[bold yellow]warning:[/] {100 * result.domain.out_share:.0f}% of rows are out of domain: the model's "
            f"main head was trained on other kinds of pairs. {_out_of_domain_labels(result.domain)} "
            "To adapt the model, label a few dozen "
            "of your pairs and extend it: "
            "mmscore train LABELLED.csv --base default --out MODEL, then mmscore score ... --model MODEL",
            highlight=False,
        )
    table = Table(title="predicted labels and confidence (max probability)")
    for column in ("label", "rows", "%", "p10", "median", "p90", "histogram 0.33 → 1.0"):
        table.add_column(column, justify="left" if column in ("label", "histogram 0.33 → 1.0") else "right")
    bars = " ▁▂▃▄▅▆▇█"
    for label in LABELS:
        n = result.predicted.get(label, 0)
        hist = result.confidence_hist[label]
        top = max(hist) or 1
        spark = "".join(bars[round(8 * h / top)] for h in hist)
        q = result.confidence_quantiles.get(label, {})
        table.add_row(
            label,
            str(n),
            f"{100 * n / max(result.rows, 1):.1f}",
            *(f"{q[k]:.2f}" if k in q else "-" for k in ("p10", "p50", "p90")),
            spark,
        )
    console.print(table)
    if result.domain:
        console.print(domain_table(result.domain))
    share = 100 * result.low_confidence / max(result.rows, 1)
    console.print(
        f"low confidence (max probability < {result.low_confidence_threshold:g}): {result.low_confidence} rows "
        f"({share:.1f}%)"
    )
    for column, counts in (*result.image_statuses.items(), ("text_status", result.text_statuses)):
        if counts:
            console.print(counts_table(column, dict(counts), sum(counts.values())))
    if result.gold_outside_labels:
        console.print(f"gold labels outside {', '.join(LABELS)}: {dict(result.gold_outside_labels)} (not scored)")
    if result.metrics is None:
        console.print(f"no per-class report: {result.gold_missing_reason}")
        return
    console.print(metrics_table(f"against gold column {result.gold_column!r}", result.metrics))
    m, base = result.metrics, result.metrics["majority_baseline"]
    console.print(
        f"weighted-F1 {m['weighted_f1']:.3f}; majority baseline (always {base['label']}): "
        f"accuracy {base['accuracy']:.3f}, macro-F1 {base['macro_f1']:.3f}"
    )
    console.print(calibration_table(result.calibration))


def domain_table(domain) -> Table:
    """In-domain and out-of-domain rows side by side: share, predicted labels, mean confidence."""
    from mmscore.labels import LABELS

    facts = domain.to_json()
    known = max(facts["in_domain"]["rows"] + facts["out_of_domain"]["rows"], 1)
    title = f"in the model's domain? ({100 * facts['out_of_domain_share']:.1f}% of rows out of domain)"
    if facts["labelled_by_second_head"]:
        title += f"; {facts['labelled_by_second_head']} rows labelled by the second head"
        if facts["out_of_domain_labelled_by_second_head"] < facts["labelled_by_second_head"]:
            title += f" ({facts['out_of_domain_labelled_by_second_head']} of them out of domain)"
    if facts["unknown_rows"]:
        title += f"; {facts['unknown_rows']} rows without a score (model has no in-domain reference)"
    table = Table(title=title)
    for column in ("rows", "n", "%", *LABELS, "mean confidence"):
        table.add_column(column, justify="left" if column == "rows" else "right")
    for name, side in (("in domain", facts["in_domain"]), ("out of domain", facts["out_of_domain"])):
        mean = side["mean_confidence"]
        counts = [str(side["predicted_counts"][k]) for k in LABELS]
        table.add_row(
            name, str(side["rows"]), f"{100 * side['rows'] / known:.1f}", *counts, f"{mean:.3f}" if mean else "-"
        )
    return table


def calibration_table(calibration: dict) -> Table:
    table = Table(
        title=f"calibration vs gold: ECE {calibration['ece']:.3f}, log-loss {calibration['log_loss']:.3f}, "
        f"Brier {calibration['brier']:.3f}; mean confidence {calibration['mean_confidence']:.3f} at accuracy "
        f"{calibration['accuracy']:.3f}"
    )
    for column in ("confidence bin", "rows", "mean confidence", "accuracy"):
        table.add_column(column, justify="right")
    for b in calibration["reliability"]:
        if b["rows"]:
            low, high = b["bin"]
            table.add_row(
                f"{low:.1f}–{high:.1f}", str(b["rows"]), f"{b['mean_confidence']:.3f}", f"{b['accuracy']:.3f}"
            )
    return table


def print_doctor(console: Console, report) -> None:
    """``mmscore doctor``'s table: versions, devices, load times, cosines, photo checks, pass/fail per check."""
    table = Table(title="mmscore doctor", show_header=False)
    for name, value in report.versions.items():
        table.add_row("version", name, value)
    table.add_row("devices", "", ", ".join(report.devices))
    for name, seconds in report.load_seconds.items():
        table.add_row("load", name, f"{seconds:.2f} s")
    for name, value in report.cosines.items():
        table.add_row("cosine", name, f"{value:.3f}")
    for photo, top in report.photos.items():
        table.add_row("photo", photo, ", ".join(f"{label} {p:.2f}" for label, p in top))
    for check, ok in report.checks.items():
        table.add_row("check", check, "[green]pass[/]" if ok else "[red]FAIL[/]")
    console.print(table)


def print_pair_reader(console: Console, result, options) -> None:
    facts = result.facts
    console.print(
        f"saved pair reader to {result.path}: {facts['train_pairs']} pairs x {options.epochs:g} epochs on "
        f"{facts['device']} in {facts['train_seconds']:.0f} s ({facts['pairs_per_second']:.0f} pairs/s); "
        f"dev accuracy {facts.get('dev_accuracy', float('nan')):.3f} on {facts['dev_pairs']} pairs",
        highlight=False,
    )
    loss = facts.get("final_loss")
    if loss is not None and not loss < 0.95 * math.log(3):  # three labels: ln 3 is what guessing costs (or NaN)
        console.print(
            f"warning: the reader learned nothing (final loss {loss}, chance is {math.log(3):.3f}): training "
            "diverged; lower --learning-rate (2e-4 suits mpnet-base-v2's adapter)",
            highlight=False,
        )
