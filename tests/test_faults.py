"""Fault injection: a real HTTP server on 127.0.0.1 misbehaving in every way we know, per URL.

``FAULTS`` is the table README's fault section is written from: each fault and the status a user sees.
"""

import io
import socket
import struct
import time
from dataclasses import asdict

import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import make_fetcher, png_bytes
from PIL import Image

from mmscore.images.fetcher import FetchSettings
from mmscore.images.loading import load_image
from mmscore.images.url_policy import UrlPolicy
from mmscore.io.pairs_reader import open_pairs
from mmscore.model.predictor import Predictor
from mmscore.scoring.local_engine import score_pairs
from mmscore.scoring.run import ScoreOptions

SETTINGS = FetchSettings(
    connect_timeout=1.0, read_timeout=0.5, total_timeout=1.5, retries=2, backoff=0.01, max_bytes=200_000
)
# Loopback is let in by name, as an internal range would be; every other private range stays blocked.
POLICY = UrlPolicy(allowed_networks=["127.0.0.1/32"])
PNG = png_bytes((10, 120, 200))


def _headers(handler, status=200, length=None, content_type="image/png"):
    handler.send_response(status)
    if content_type:
        handler.send_header("Content-Type", content_type)
    if length is not None:
        handler.send_header("Content-Length", str(length))
    handler.end_headers()


def _reset(handler):
    """Close with RST instead of FIN (SO_LINGER 0)."""
    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    handler.connection.close()
    handler.close_connection = True


def _reset_before_reply(handler, _n):
    _reset(handler)


def _reset_mid_body(handler, _n):
    _headers(handler, length=len(PNG) + 5000)
    handler.wfile.write(PNG[:50])
    handler.wfile.flush()
    _reset(handler)


def _stall_before_headers(handler, _n):
    time.sleep(3)


def _stall_mid_body(handler, _n):
    _headers(handler, length=len(PNG))
    handler.wfile.write(PNG[:20])
    handler.wfile.flush()
    time.sleep(3)


def _trickle(handler, _n):
    _headers(handler, length=100_000)
    for _ in range(200):  # one byte every 0.1 s: each read is quick, the whole body is not
        try:
            handler.wfile.write(b"\x89")
            handler.wfile.flush()
        except OSError:
            return
        time.sleep(0.1)


def _truncated(handler, _n):
    _headers(handler, length=len(PNG) + 1000)
    handler.wfile.write(PNG)
    handler.close_connection = True


def _endless(sent: list):
    """A body with no Content-Length that never ends; records how much was sent before the client hung up."""

    def route(handler, _n):
        _headers(handler)
        handler.close_connection = True
        total = 0
        try:
            while total < 500_000_000:
                handler.wfile.write(b"\0" * 65536)
                total += 65536
        except OSError:
            pass
        sent.append(total)

    return route


def _bomb() -> bytes:
    buf = io.BytesIO()
    Image.new("1", (12000, 12000)).save(buf, "PNG")  # ~20 KB on disk, 144 M pixels decoded
    return buf.getvalue()


def _always(status, headers=None, body=b"x"):
    return lambda _n: (status, headers or {}, body)


def _then_ok(status, failures, headers=None):
    return lambda n: (status, headers or {}, b"busy") if n <= failures else (200, {"Content-Type": "image/png"}, PNG)


# name -> (how the server behaves, status the row gets, requests the server should see or None)
FAULTS = {
    "http_404": ({"routes": None}, "http_404", 1),
    "http_410": ({"routes": _always(410)}, "http_410", 1),
    "429_retry_after": ({"routes": _then_ok(429, 1, {"Retry-After": "1"})}, "ok", 2),
    "429_forever": ({"routes": _always(429)}, "http_429", 3),
    "500_then_ok": ({"routes": _then_ok(500, 1)}, "ok", 2),
    "503_then_ok": ({"routes": _then_ok(503, 2, {"Retry-After": "0"})}, "ok", 3),
    "reset_before_reply": ({"raw": _reset_before_reply}, "connection_error", 3),
    "reset_mid_body": ({"raw": _reset_mid_body}, "truncated", 3),
    "stall_before_headers": ({"raw": _stall_before_headers}, "timeout", 1),
    "stall_mid_body": ({"raw": _stall_mid_body}, "timeout", 1),
    "slow_trickle": ({"raw": _trickle}, "timeout", 1),
    "truncated_body": ({"raw": _truncated}, "truncated", 3),
    "wrong_content_type": ({"routes": _always(200, {"Content-Type": "text/html"}, PNG)}, "ok", 1),
    "missing_content_type": ({"routes": _always(200, {}, PNG)}, "ok", 1),
    "html_as_image": ({"routes": _always(200, {"Content-Type": "image/png"}, b"<html>gone</html>")}, "not_an_image", 1),
    "empty_body": ({"routes": _always(200, {"Content-Type": "image/png"}, b"")}, "not_an_image", 1),
    "corrupt_png": ({"routes": _always(200, {}, PNG[:60])}, "corrupt_image", 1),
    "over_cap_declared": ({"routes": _always(200, {}, b"\0" * 300_000)}, "too_large", 1),
    "over_cap_streamed": ({"raw": "endless"}, "too_large", 1),
    "decompression_bomb": ({"routes": _always(200, {}, _bomb())}, "too_many_pixels", 1),
    "redirect_loop": ({"routes": _always(302, {"Location": "/f/redirect_loop"}, b"")}, "too_many_redirects", 4),
    "redirect_to_private": ({"routes": _always(302, {"Location": "http://10.9.8.7/x.png"}, b"")}, "blocked_private", 1),
    "redirect_to_metadata": (
        {"routes": _always(301, {"Location": "http://169.254.169.254/latest/meta-data"}, b"")},
        "blocked_private",
        1,
    ),
    "redirect_to_file_scheme": ({"routes": _always(302, {"Location": "file:///etc/passwd"}, b"")}, "blocked_scheme", 1),
    "redirect_to_image": ({"routes": _always(302, {"Location": "/f/missing_content_type"}, b"")}, "ok", 1),
}


@pytest.fixture
def fault_server(image_server):
    """The image server with every fault of ``FAULTS`` mounted under ``/f/<name>``."""
    image_server.endless_sent = []
    for name, (behaviour, _status, _hits) in FAULTS.items():
        path = f"/f/{name}"
        if behaviour.get("raw") == "endless":
            image_server.raw_routes[path] = _endless(image_server.endless_sent)
        elif "raw" in behaviour:
            image_server.raw_routes[path] = behaviour["raw"]
        elif behaviour.get("routes"):
            image_server.routes[path] = behaviour["routes"]
    return image_server


def _fetcher(tmp_path, policy=POLICY):
    return make_fetcher(tmp_path, policy=policy, **asdict(SETTINGS))


@pytest.mark.parametrize("name", FAULTS)
def test_each_fault_becomes_its_status_in_bounded_time(tmp_path, fault_server, name):
    _behaviour, expected, hits = FAULTS[name]
    started = time.monotonic()
    _pixels, status = load_image(_fetcher(tmp_path), fault_server.url(f"/f/{name}"), 64)
    elapsed = time.monotonic() - started
    assert status == expected
    if hits is not None:
        assert fault_server.hits[f"/f/{name}"] == hits
    # Worst case: every attempt hits its read timeout or the whole-body deadline, plus Retry-After waits.
    bound = (SETTINGS.retries + 1) * (SETTINGS.total_timeout + SETTINGS.read_timeout) + 1.5
    assert elapsed < bound, f"{name} took {elapsed:.1f}s"


def test_429_waits_for_retry_after(tmp_path, fault_server):
    started = time.monotonic()
    assert _fetcher(tmp_path).fetch(fault_server.url("/f/429_retry_after")).status == "ok"
    assert time.monotonic() - started >= 1.0


def test_oversized_stream_stops_early(tmp_path, fault_server):
    assert _fetcher(tmp_path).fetch(fault_server.url("/f/over_cap_streamed")).status == "too_large"
    deadline = time.monotonic() + 5
    while not fault_server.endless_sent and time.monotonic() < deadline:
        time.sleep(0.05)
    # The client hung up after the cap; socket buffers let the server push a few MB more at most.
    assert fault_server.endless_sent and fault_server.endless_sent[0] < 20_000_000


def test_connection_refused_is_a_status(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again on exit: nothing listens there
    assert _fetcher(tmp_path).fetch(f"http://127.0.0.1:{port}/x.png").status == "connection_error"


def test_dns_rebinding_is_caught_at_connect(tmp_path, fault_server):
    """The name resolves to a public address for the check, then the connection lands on loopback."""
    url = fault_server.image("/rebind.png", PNG)
    lying = UrlPolicy(resolver=lambda _host, _port: ["93.184.216.34"])
    assert _fetcher(tmp_path, lying).fetch(url).status == "blocked_private"
    assert fault_server.hits["/rebind.png"] == 0


def test_every_fault_in_one_run_keeps_every_row_in_order(tmp_path, fault_server, model_dir):
    names = list(FAULTS)
    rows = [
        {"id": f"{i:019d}", "text_1": f"claim {i}", "text_2": "reply", "image_1": fault_server.url(f"/f/{n}")}
        for i, n in enumerate(names * 2)  # twice: the second time many come from the cache
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "faults.csv", index=False)
    out = tmp_path / "out.parquet"
    summary = score_pairs(
        open_pairs(tmp_path / "faults.csv"),
        out,
        Predictor.load(model_dir),
        _fetcher(tmp_path),
        ScoreOptions(batch_size=8, chunk_batches=2, fetch_workers=16),
    )
    result = pq.read_table(out).to_pandas()
    assert summary.rows == len(result) == len(rows)
    assert result["id"].tolist() == [r["id"] for r in rows]
    first, second = result["image_1_status"][: len(names)], result["image_1_status"][len(names) :]
    assert first.tolist() == [FAULTS[n][1] for n in names]
    assert second.tolist() == [("cached" if FAULTS[n][1] == "ok" else FAULTS[n][1]) for n in names]
    assert (result["image_2_status"] == "missing").all()


def test_a_hung_dns_lookup_becomes_a_status(tmp_path):
    def hung(_host, _port):
        time.sleep(3)
        return ["93.184.216.34"]

    started = time.monotonic()
    policy = UrlPolicy(resolver=hung, resolve_timeout=0.3)
    assert _fetcher(tmp_path, policy).fetch("http://slow-dns.example/x.png").status == "dns_timeout"
    assert time.monotonic() - started < 1.5
