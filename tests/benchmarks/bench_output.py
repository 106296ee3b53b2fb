"""What the output layout costs: one file (parts assembled at the end) against --output-dir (parts kept),
on the local disk and on an S3-compatible server on loopback (moto; needs the dev extra), in one run.

    .venv/bin/python tests/benchmarks/bench_output.py [ROWS]      (default 200000)

Rows shaped like `mmscore score` output (ids, tweet-length texts, image URLs, label, probabilities,
statuses), written through ScoredWriter in parts of 256 rows (the default chunk) and of 8,192 rows
(`--part-rows 8192`). Prints seconds to write the parts, to finish (assemble or write the facts), and to read
the result back as one table, with ratios against the local one-file layout of the same part size.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def scored_table(rows: int) -> pa.Table:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), rows).astype(np.float32)
    words = np.array(
        ["storm", "closes", "the", "harbour", "bridge", "all", "weekend", "traffic", "river", "city", "council", "says"]
    )
    texts = [" ".join(rng.choice(words, 18)) for _ in range(min(rows, 5000))]
    text = [texts[i % len(texts)] for i in range(rows)]
    return pa.table(
        {
            "id_1": [str(1700000000000000000 + i) for i in range(rows)],
            "text_1": text,
            "image_1": [f"https://pbs.example/media/{i:012d}.jpg" for i in range(rows)],
            "id_2": [str(1800000000000000000 + i) for i in range(rows)],
            "text_2": text[::-1],
            "image_2": [None] * rows,
            "pred_label": np.array(["Implies", "Contradictory", "NoEntailment"])[probs.argmax(1)],
            "prob_contradictory": probs[:, 0],
            "prob_implies": probs[:, 1],
            "prob_noentailment": probs[:, 2],
            "image_1_status": ["ok"] * rows,
            "image_2_status": ["missing"] * rows,
            "text_status": ["ok"] * rows,
        }
    )


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def run(spec: str, folder: bool, table: pa.Table, part_rows: int) -> tuple[float, float, float]:
    from mmscore.io.scored_writer import ScoredOutput, ScoredWriter
    from mmscore.io.storage import Storage

    writer = ScoredWriter(ScoredOutput(spec, folder), {"bench": spec}, resume=False)
    write = timed(lambda: [writer.write(t) for t in _slices(table, part_rows)])
    finish = timed(lambda: writer.finish({"rows": table.num_rows}, table.schema))
    target = Storage.at(spec)
    read = timed(lambda: pq.read_table(target.path, filesystem=target.filesystem))
    return write, finish, read


def _slices(table: pa.Table, rows: int) -> list[pa.Table]:
    return [table.slice(start, rows) for start in range(0, table.num_rows, rows)]


def start_moto() -> subprocess.Popen | None:
    try:
        import moto  # noqa: F401
    except ImportError:
        print("(moto absent: local disk only)")
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    import pyarrow.fs as pafs

    fs = pafs.S3FileSystem(endpoint_override=f"http://127.0.0.1:{port}", allow_bucket_creation=True)
    fs.create_dir("bench")
    return server


def main(rows: int = 200_000) -> None:
    table = scored_table(rows)
    print(f"{rows} rows, {table.nbytes / 1e6:.0f} MB in memory")
    server = start_moto()
    with tempfile.TemporaryDirectory() as tmp:
        places = {"local": tmp}
        if server:
            places["s3 (moto, loopback)"] = "s3://bench"
        print("| storage | part rows | layout | parts s | finish s | read s | total vs local file |")
        print("|---|---|---|---|---|---|---|")
        for part_rows in (256, 8192):
            baseline = None
            for place, root in places.items():
                for folder in (False, True):
                    spec = f"{root}/out-{part_rows}" + ("" if folder else ".parquet")
                    write, finish, read = run(spec, folder, table, part_rows)
                    total = write + finish
                    baseline = baseline or total
                    layout = "--output-dir" if folder else "-o file"
                    print(
                        f"| {place} | {part_rows} | {layout} | {write:.2f} | {finish:.2f} | {read:.2f} "
                        f"| {total / baseline:.2f}× |"
                    )
    if server:
        server.terminate()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
