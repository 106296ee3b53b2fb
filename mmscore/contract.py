"""The output contract, declared once: the columns `mmscore score` adds to every input row, their Arrow types,
and what the in-domain flag is called in counts. Scoring builds its tables from it, the writer its schema,
the report and the Python API read it, and a test holds the README's column table against it."""

from __future__ import annotations

import pyarrow as pa

from mmscore.labels import PROB_COLUMNS

PRED_LABEL = "pred_label"
IMAGE_STATUS_COLUMNS = ("image_1_status", "image_2_status")
TEXT_STATUS = "text_status"
STATUS_COLUMNS = (*IMAGE_STATUS_COLUMNS, TEXT_STATUS)
DOMAIN_SCORE, IN_DOMAIN = "in_domain_score", "in_domain"  # see mmscore.model.domain; null without a reference
LABELLED_BY = "labelled_by"  # which head gave pred_label (see mmscore.model.second_head)
MAIN_HEAD, SECOND_HEAD = "main_head", "second_head"

OUTPUT_FIELDS = (
    pa.field(PRED_LABEL, pa.string()),
    *(pa.field(name, pa.float32()) for name in PROB_COLUMNS),
    *(pa.field(name, pa.string()) for name in STATUS_COLUMNS),
    pa.field(DOMAIN_SCORE, pa.float32()),
    pa.field(IN_DOMAIN, pa.bool_()),
    pa.field(LABELLED_BY, pa.string()),
)
OUTPUT_COLUMNS = tuple(f.name for f in OUTPUT_FIELDS)
OUTPUT_TYPES = {f.name: f.type for f in OUTPUT_FIELDS}
DOMAIN_NAMES = {True: "in_domain", False: "out_of_domain", None: "unknown"}  # in_domain value -> its tally


def output_schema(input_schema: pa.Schema) -> pa.Schema:
    """The scored output's schema: the input's columns (old output columns dropped), then the contract's."""
    return pa.schema([f for f in input_schema if f.name not in OUTPUT_COLUMNS] + list(OUTPUT_FIELDS))


def output_array(name: str, values) -> pa.Array:
    """One output column, typed by the contract; ``values=None`` gives a column of nulls (length via caller)."""
    return pa.array(values, OUTPUT_TYPES[name])
