"""The Python API (mmscore.Scorer), the per-chunk seam it shares with the CLI, and the one place errors surface."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from conftest import png_bytes
from typer.testing import CliRunner

import mmscore
from mmscore.cli import app
from mmscore.contract import OUTPUT_COLUMNS
from mmscore.errors import InputError, OutputError
from mmscore.io.scored_writer import read_run_facts
from mmscore.labels import PROB_COLUMNS


@pytest.fixture(scope="module")
def scorer(model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    (root / "red.png").write_bytes(png_bytes((220, 20, 20)))
    (root / "blue.png").write_bytes(png_bytes((20, 20, 220), size=(80, 60)))
    return mmscore.Scorer(model_dir, image_root=root, image_cache=root / "cache", precision="float32", batch_size=4)


def _pairs(n: int = 11) -> pd.DataFrame:
    texts = ["The bridge is closed.", "Rain all day in the city, and the river is rising fast tonight.", "", "ok"]
    return pd.DataFrame(
        {
            "id": [f"9{i:018d}" for i in range(n)],
            "text_1": [texts[i % 4] + f" {i}" for i in range(n)],
            "text_2": [texts[(i + 1) % 4] for i in range(n)],
            "image_1": ["red.png", "blue.png", None, "missing.png"][:4] * (n // 4) + ["red.png"] * (n % 4),
        },
        index=pd.RangeIndex(100, 100 + n),
    )


def test_score_frame_equals_score_file_row_for_row(scorer, tmp_path):
    """In memory and through a file: same columns, same values, same statuses, same order; the index is kept."""
    frame = _pairs()
    in_memory = scorer.score_frame(frame)
    frame.to_parquet(tmp_path / "in.parquet", index=False)
    (tmp_path / "red.png").write_bytes(png_bytes((220, 20, 20)))
    (tmp_path / "blue.png").write_bytes(png_bytes((20, 20, 220), size=(80, 60)))
    summary = scorer.score_file(tmp_path / "in.parquet", tmp_path / "out.parquet")
    from_file = pd.read_parquet(tmp_path / "out.parquet")
    assert list(in_memory.index) == list(frame.index)
    assert list(in_memory.columns) == list(from_file.columns) == [*frame.columns, *OUTPUT_COLUMNS]
    pd.testing.assert_frame_equal(in_memory.reset_index(drop=True), from_file, check_exact=True)
    assert summary.rows == len(frame)
    assert in_memory["image_1_status"].tolist()[:4] == ["ok", "ok", "missing", "not_found"]
    assert in_memory["text_status"].iloc[1] == "empty_text_2"
    np.testing.assert_allclose(in_memory[list(PROB_COLUMNS)].sum(axis=1), 1.0, atol=1e-5)
    assert read_run_facts(tmp_path / "out.parquet")["precision"] == "float32"


def test_score_arrow_keeps_every_row_of_an_empty_or_odd_sized_table(scorer):
    empty = pa.table({"text_1": pa.array([], pa.string()), "text_2": pa.array([], pa.string())})
    out = scorer.score_arrow(empty)
    assert out.num_rows == 0 and out.column_names == ["text_1", "text_2", *OUTPUT_COLUMNS]
    odd = scorer.score_arrow(pa.Table.from_pandas(_pairs(37), preserve_index=False))
    assert odd.num_rows == 37 and odd.column("id").to_pylist() == _pairs(37)["id"].tolist()


def test_a_frame_without_the_text_columns_is_one_clear_error(scorer):
    with pytest.raises(InputError, match="missing required column.*text_2"):
        scorer.score_frame(pd.DataFrame({"text_1": ["a"]}))
    with pytest.raises(InputError, match="column text_1 holds int64, not text"):
        scorer.score_frame(pd.DataFrame({"text_1": [1], "text_2": ["b"]}))


def test_token_length_batches_give_the_file_order_results(scorer, tmp_path):
    """Batches cut from rows sorted by token count, written back in input order: the same probabilities."""
    from mmscore.scoring.chunks import ChunkScorer

    frame = _pairs(24)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    fetcher = scorer._fetcher(None)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        sorted_chunk = ChunkScorer(scorer.predictor, fetcher, 4).prepare(table, pool)
        tokens = sorted_chunk.tokens.longest_per_row()
        assert (np.diff(tokens[sorted_chunk.order]) >= 0).all() and (np.diff(tokens) < 0).any()
        by_length = ChunkScorer(scorer.predictor, fetcher, 4).score(sorted_chunk)
        in_file_order = ChunkScorer(scorer.predictor, fetcher, 4, length_batches=False).score_table(table, pool)
    assert by_length.column("id").to_pylist() == frame["id"].tolist()
    for name in PROB_COLUMNS:
        np.testing.assert_allclose(by_length.column(name), in_file_order.column(name), atol=1e-5)


def test_every_user_error_is_a_one_line_message_with_exit_code_2(tmp_path, model_dir):
    """The CLI catches the one base class in one place: no traceback for any kind."""
    runner = CliRunner()
    (tmp_path / "not.parquet").write_text("plain text")
    (tmp_path / "pairs.csv").write_text("text_1,text_2\na,b\n")
    pairs, out = str(tmp_path / "pairs.csv"), str(tmp_path / "o.parquet")
    cases = [
        ["report", str(tmp_path / "not.parquet")],
        ["score", str(tmp_path / "none.csv"), "-o", out],
        ["score", pairs, "-o", out, "--model", str(tmp_path)],  # not a model directory
        ["score", pairs, "-o", out, "--precision", "float8"],
        ["score", pairs, "-o", str(tmp_path / "pairs.csv" / "o.parquet"), "--model", str(model_dir)],  # OutputError
    ]
    for args in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert lines and lines[-1].startswith("error:") and "Traceback" not in result.output, (args, result.output)


def test_saving_a_model_where_it_cannot_be_written_is_an_output_error(tmp_path, model_dir):
    from mmscore.model.card import ModelCard
    from mmscore.model.predictor import Predictor
    from mmscore.training import save_model

    predictor = Predictor.load(model_dir)
    blocker = tmp_path / "model"
    blocker.write_text("a file where the model folder should go")
    with pytest.raises(OutputError, match="cannot write the model to"):
        save_model(blocker, predictor.head, ModelCard.load(model_dir))
    save_model(tmp_path / "fine", predictor.head, ModelCard.load(model_dir))
    assert Predictor.load(tmp_path / "fine").card == predictor.card
    assert not [p for p in (tmp_path / "fine").iterdir() if p.name.startswith(".")]  # no temporary files left


def test_engine_choice_errors_are_one_line_before_the_model_loads(tmp_path, monkeypatch):
    """An unknown engine, or --engine ray without Ray installed (simulated: importing it fails), stops at once."""
    import sys

    (tmp_path / "pairs.csv").write_text("text_1,text_2\na,b\n")
    args = ["score", str(tmp_path / "pairs.csv"), "-o", str(tmp_path / "o.parquet"), "--model", str(tmp_path / "none")]
    unknown = CliRunner().invoke(app, [*args, "--engine", "spark"])
    assert unknown.exit_code == 2 and "error: unknown engine 'spark'; choose from local, ray" in unknown.output
    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without the extra sees
    missing = CliRunner().invoke(app, [*args, "--engine", "ray"])
    assert missing.exit_code == 2 and "--engine ray needs Ray, which is not installed" in missing.output
    assert "Traceback" not in missing.output


def test_help_shows_every_bracketed_text():
    """Rich markup must not eat "[ray]", "[default: ...]" or "[, image_*]" from any command's --help."""
    import re

    import typer.main

    commands = typer.main.get_command(app).commands
    for name, command in commands.items():
        help_text = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "400"}).output
        shown = re.sub(r"[\s│]+", " ", help_text)
        for param in command.params:
            for bracketed in re.findall(r"\[[^\]]*\]", (getattr(param, "help", None) or "").replace("\\", "")):
                assert re.sub(r"\s+", " ", bracketed) in shown, (name, param.name, bracketed)


def test_forcing_bfloat16_where_it_is_emulated_warns_once_and_names_the_fix(tmp_path, model_dir, monkeypatch):
    """Without native bfloat16, a forced --precision bfloat16 is measured ~5x slower: the API warns, the CLI prints
    one line; auto and float32 stay silent, and so does bfloat16 on hardware that has it."""
    import warnings

    from mmscore import precision

    (tmp_path / "pairs.csv").write_text("text_1,text_2\na,b\n")
    for native in (False, True):
        monkeypatch.setattr(precision, "hardware_bf16", lambda native=native: native)
        for requested in ("bfloat16", "float32", "auto"):
            with warnings.catch_warnings(record=True) as warned:
                warnings.simplefilter("always")
                mmscore.Scorer(model_dir, precision=requested)
            emulated = [w for w in warned if issubclass(w.category, precision.EmulatedPrecisionWarning)]
            assert len(emulated) == (requested == "bfloat16" and not native), (native, requested, emulated)
    monkeypatch.setattr(precision, "hardware_bf16", lambda: False)
    args = ["score", str(tmp_path / "pairs.csv"), "-o", str(tmp_path / "o.parquet"), "--model", str(model_dir)]
    result = CliRunner().invoke(app, [*args, "--precision", "bfloat16"])
    assert result.exit_code == 0, result.output
    warned = [line for line in result.output.splitlines() if line.startswith("warning: bfloat16 is emulated")]
    assert len(warned) == 1 and "--precision auto picks float32" in warned[0], result.output
