"""Training from stdin (``mmscore train -``): stdin is spooled to a file and read twice (rows, then the card's
hash). Through a real pipe, written in small pieces with pauses, at sizes around the writer's buffers, the spooled
bytes, the rows and the hash must equal those of the same file: a spool read back before it is flushed and closed
trains on a truncated file (a 2.8 KB CSV as 0 bytes, a 1 MiB + 3 KB one without its last 3 KB)."""

import hashlib
import subprocess
import sys
import time

import pytest

SPOOL = """
import hashlib, sys
from mmscore.training.card import data_sha256
from mmscore.training.embeddings import read_labelled_pairs
from mmscore.training.recipe import readable_twice
with readable_twice("-") as path:
    df, skipped = read_labelled_pairs(path)
    print(len(df), skipped, data_sha256(path), hashlib.sha256(df.to_csv(index=False).encode()).hexdigest())
"""


def _csv(size: int) -> bytes:
    lines = [b"text_1,text_2,label"]
    i = 0
    while sum(len(x) + 1 for x in lines) < size:
        lines.append(f"Update {i}: {i} cases today #news,{i} cases reported today,Implies".encode())
        i += 1
    return b"\n".join(lines) + b"\n"


def _rows_and_hash(path) -> str:
    from mmscore.training.card import data_sha256
    from mmscore.training.embeddings import read_labelled_pairs

    df, skipped = read_labelled_pairs(path)
    return f"{len(df)} {skipped} {data_sha256(path)} {hashlib.sha256(df.to_csv(index=False).encode()).hexdigest()}"


@pytest.mark.parametrize("size", [2_800, 8_192 + 1, 1_048_576 + 3_072])
def test_stdin_through_a_pipe_in_small_writes_trains_on_every_byte(tmp_path, size):
    data = _csv(size)
    (tmp_path / "same.csv").write_bytes(data)
    child = subprocess.Popen([sys.executable, "-c", SPOOL], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    piece = max(1, len(data) // 7)
    for start in range(0, len(data), piece):  # several writes, with pauses: the reader sees partial reads
        child.stdin.write(data[start : start + piece])
        child.stdin.flush()
        time.sleep(0.02)
    child.stdin.close()
    said = child.stdout.read().decode().strip()
    assert child.wait(timeout=120) == 0
    assert said == _rows_and_hash(tmp_path / "same.csv")
    assert said.split()[2] == hashlib.sha256(data).hexdigest()  # the card's hash is that of every byte sent
