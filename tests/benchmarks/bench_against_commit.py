"""Scoring throughput of this tree against an earlier commit, in the same run, on the same machine.

Run on demand:  .venv/bin/python tests/benchmarks/bench_against_commit.py [ROWS] [COMMIT]   (default 384, 3b1069d)

The earlier commit is unpacked (``git archive``) into a temporary folder, package data and shipped model included,
and each tree scores the same files in its own Python process (``Scorer().score_file``, default settings: the
shipped model, ``--precision auto``): texts only and with a real photo on both posts (the rows of
``bench_score.py``: real tweets and real photos where ``../shared/data`` is present), and plain-language pairs
(``sample_data/textbook_pairs.csv`` repeated, every row out of the tweets' domain: the second head's worst case).
Each process scores 64 rows first (tracing, warm caches) and is then timed. Prints rows/s, the ratio, and how many
labels changed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_score import bench_inputs  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

TIMED = """
import json, sys, time
import mmscore
data, out, warm = sys.argv[1], sys.argv[2], sys.argv[3]
scorer = mmscore.Scorer()
scorer.score_file(data, warm, limit=64)
start = time.perf_counter()
summary = scorer.score_file(data, out)
print(json.dumps({"rows": summary.rows, "seconds": time.perf_counter() - start, "module": mmscore.__file__}))
"""


def unpack(commit: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def timed(tree: Path, data: Path, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", TIMED, str(data), str(out), str(out.with_suffix(".warm.parquet"))],
        cwd=tree, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(result["module"]).resolve().is_relative_to(tree.resolve()), result  # the tree meant, not another
    return result


def main(rows: int = 384, commit: str = "3b1069d") -> None:
    root = Path(tempfile.mkdtemp())
    (root / "old").mkdir()
    old = unpack(commit, root / "old")
    image_root, inputs, described = bench_inputs(rows, root)
    book = pd.read_csv(REPO / "sample_data" / "textbook_pairs.csv", dtype=str)[["text_1", "text_2"]]
    inputs["plain pairs"] = pd.concat([book] * max(1, rows // len(book)), ignore_index=True)
    print(f"{described}; plain pairs: textbook_pairs.csv repeated")
    print(f"{'input':12} {commit:>14} {'this tree':>14} {'ratio':>7} {'labels changed':>15}")
    for name, frame in inputs.items():
        data = image_root / f"bench-{name.replace(' ', '_')}.parquet"  # the image root is the input's folder
        frame.to_parquet(data)
        before = timed(old, data, root / f"old-{data.stem}.parquet")
        after = timed(REPO, data, root / f"new-{data.stem}.parquet")
        labels_old = pd.read_parquet(root / f"old-{data.stem}.parquet")["pred_label"]
        labels_new = pd.read_parquet(root / f"new-{data.stem}.parquet")["pred_label"]
        rate_old, rate_new = before["rows"] / before["seconds"], after["rows"] / after["seconds"]
        changed = int((labels_old != labels_new).sum())
        print(
            f"{name:12} {rate_old:10.1f} r/s {rate_new:10.1f} r/s {rate_new / rate_old:7.2f} "
            f"{changed:>6} of {len(frame)}"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 384, sys.argv[2] if len(sys.argv) > 2 else "3b1069d")
