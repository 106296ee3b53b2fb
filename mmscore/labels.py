"""The label contract: names, index order, and the probability columns that carry them."""

LABELS: tuple[str, ...] = ("Contradictory", "Implies", "NoEntailment")
LABEL_INDEX: dict[str, int] = {name: i for i, name in enumerate(LABELS)}
PROB_COLUMNS: tuple[str, ...] = tuple(f"prob_{name.lower()}" for name in LABELS)
