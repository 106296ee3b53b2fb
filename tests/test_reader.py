import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mmscore.errors import InputError
from mmscore.io.pairs_reader import ROW_NOTE, open_pairs


def _csv(tmp_path, text: str):
    path = tmp_path / "pairs.csv"
    path.write_text(text)
    return path


def test_chunks_have_exact_size_and_keep_order(tmp_path):
    rows = "\n".join(f"{i},a{i},b{i}" for i in range(23))
    source = open_pairs(_csv(tmp_path, "id,text_1,text_2\n" + rows + "\n"))
    chunks = list(source.chunks(5))
    assert [c.num_rows for c in chunks] == [5, 5, 5, 5, 3]
    assert [v for c in chunks for v in c.column("id").to_pylist()] == [str(i) for i in range(23)]


def test_skip_resumes_mid_file(tmp_path):
    table = pa.table({"text_1": [f"t{i}" for i in range(10)], "text_2": ["x"] * 10})
    pq.write_table(table, tmp_path / "p.parquet", row_group_size=3)
    chunks = list(open_pairs(tmp_path / "p.parquet").chunks(4, skip=6))
    assert [v for c in chunks for v in c.column("text_1").to_pylist()] == ["t6", "t7", "t8", "t9"]


def test_long_ids_multiline_texts_and_emoji_survive(tmp_path):
    text = 'id_1,text_1,text_2\n1375936088968200205,"line one\nline two 🏏",&amp; done\n'
    chunk = next(open_pairs(_csv(tmp_path, text)).chunks(10))
    assert chunk.column("id_1").to_pylist() == ["1375936088968200205"]
    assert chunk.column("text_1").to_pylist() == ["line one\nline two 🏏"]


def test_real_tweets_read_with_string_ids(shared_data):
    path = shared_data / "tweets" / "tweets_trainval.csv"
    source = open_pairs(path)
    chunks = list(source.chunks(256))
    assert sum(c.num_rows for c in chunks) == len(pd.read_csv(path, dtype=str)) == 1260
    assert all(c.column(ROW_NOTE).null_count == c.num_rows for c in chunks)  # no row flagged as malformed
    assert pa.types.is_string(source.schema.field("id_1").type)


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("pairs.txt", "text_1,text_2\n", "unknown file type"),
        ("pairs.csv", "", "empty file"),
        ("pairs.csv", "text_1,other\nx,y\n", "missing required column(s) text_2"),
        ("pairs.parquet", "not parquet", "not a readable Parquet"),
    ],
)
def test_bad_inputs_give_one_line_errors(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        open_pairs(path)
    assert "\n" not in str(err.value)


def _parquet_files(folder, sizes):
    folder.mkdir(exist_ok=True)
    start = 0
    for i, size in enumerate(sizes):
        ids = [f"{n:04d}" for n in range(start, start + size)]
        pq.write_table(pa.table({"id": ids, "text_1": ids, "text_2": ids}), folder / f"f{i:02d}.parquet")
        start += size


@pytest.mark.parametrize("spec", ["{folder}", "{folder}/*.parquet", "{folder}/f0[0-3].parquet"])
def test_a_folder_or_glob_is_one_table_in_name_order(tmp_path, spec):
    """Files read in name order as one table; chunks run across file boundaries; footers give the count."""
    _parquet_files(tmp_path / "in", [3, 0, 7, 1])
    (tmp_path / "in" / "notes.txt").write_text("ignored")
    for hidden in ("_f00.parquet", ".123-0.f01.parquet"):  # run records, a writer's temporary file: not data
        pq.write_table(pa.table({"id": ["x"], "text_1": ["x"], "text_2": ["x"]}), tmp_path / "in" / hidden)
    source = open_pairs(spec.format(folder=tmp_path / "in"))
    assert source.num_rows == 11 and len(source.files) == 4
    chunks = list(source.chunks(4))
    assert [c.num_rows for c in chunks] == [4, 4, 3]
    assert [v for c in chunks for v in c.column("id").to_pylist()] == [f"{n:04d}" for n in range(11)]


def test_a_folder_of_csv_files_keeps_row_notes(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("text_1,text_2\nx,y\n")
    (tmp_path / "in" / "b.csv").write_text('text_1,text_2\n"broken,z\n')
    table = pa.concat_tables(open_pairs(tmp_path / "in").chunks(10))
    assert table.column("text_1").to_pylist()[0] == "x" and table.num_rows == 2
    assert table.column(ROW_NOTE).to_pylist() == [None, "malformed_row"]


@pytest.mark.parametrize(
    "files, message",
    [
        ({}, "no .csv or .parquet files in this folder"),
        ({"a.csv": "text_1,text_2\nx,y\n", "b.parquet": None}, "mixes CSV and Parquet"),
        ({"a.csv": "text_1,text_2\nx,y\n", "b.csv": "text_2,text_1\ny,x\n"}, "b.csv: columns text_2, text_1 differ"),
    ],
)
def test_folders_that_cannot_be_one_table_stop_with_one_line(tmp_path, files, message):
    folder = tmp_path / "in"
    folder.mkdir()
    for name, text in files.items():
        if text is None:
            pq.write_table(pa.table({"text_1": ["x"], "text_2": ["y"]}), folder / name)
        else:
            (folder / name).write_text(text)
    with pytest.raises(InputError, match=message):
        list(open_pairs(folder).chunks(10))
