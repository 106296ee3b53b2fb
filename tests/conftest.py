import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Every test run gets its own cache root, so runs never see each other's images or weights."""
    os.environ["MMSCORE_CACHE_DIR"] = str(tmp_path_factory.mktemp("mmscore-cache"))


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(scope="session", autouse=True)
def _fenced_to_loopback():
    """The whole test session can reach loopback only: names other than localhost do not resolve (no DNS
    packet leaves), and connecting to any other address is refused before a packet is sent. A broken guard
    in mmscore then fails its test with ``connection_error`` instead of reaching the network."""
    import socket

    real_connect, real_connect_ex, real_getaddrinfo = (
        socket.socket.connect,
        socket.socket.connect_ex,
        socket.getaddrinfo,
    )

    def refuse(address) -> bool:
        return isinstance(address, tuple) and not _is_loopback(str(address[0]))

    def connect(self, address):
        if refuse(address):
            raise ConnectionRefusedError(f"test fence: {address[0]} is not a loopback address")
        return real_connect(self, address)

    def connect_ex(self, address):
        return 111 if refuse(address) else real_connect_ex(self, address)  # ECONNREFUSED

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name is None or _is_loopback(name) or _is_address(name):
            return real_getaddrinfo(host, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, f"test fence: {name!r} is not resolved in tests")

    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
    yield
    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = (
        real_connect,
        real_connect_ex,
        real_getaddrinfo,
    )


def _is_address(name: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(name.split("%", 1)[0])
        return True
    except ValueError:
        return False


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (the ../shared checkout beside the repo)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def text_encoder():
    from mmscore.encoders import registry

    return registry.text_encoder()


@pytest.fixture(scope="session")
def image_encoder():
    from mmscore.encoders import registry

    return registry.image_encoder()


def make_fetcher(root: Path, *, policy=None, allow_private: bool = True, image_root: Path | None = None, **settings):
    """An image fetcher for tests: cache under ``root/cache``, quick retries, local files read under ``root``.

    ``allow_private`` lets it reach the test's own loopback servers; pass ``policy`` for a specific URL policy.
    """
    from mmscore.images.fetcher import FetchSettings, ImageFetcher
    from mmscore.images.image_cache import ImageCache
    from mmscore.images.url_policy import UrlPolicy

    return ImageFetcher(
        ImageCache(root / "cache"),
        policy or UrlPolicy(allow_private=allow_private),
        FetchSettings(**{"backoff": 0.01, **settings}),
        image_root=image_root or root,
    )


def mmscore_cli(*args) -> list[str]:
    """The argv that runs ``mmscore`` with this interpreter."""
    import sys

    return [sys.executable, "-m", "mmscore.cli", *map(str, args)]


def png_bytes(colour=(200, 30, 30), size=(64, 48), mode="RGB") -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, size, colour).save(buf, "PNG")
    return buf.getvalue()


class ImageServer:
    """A real HTTP server on 127.0.0.1 with per-path behaviour and a hit counter.

    ``routes[path](hit_number)`` returns ``(status, headers, body)``; ``raw_routes[path](handler, hit_number)``
    writes to the socket itself (resets, stalls, trickles, truncated bodies). ``keep_alive``: HTTP/1.1, one
    connection serves many requests; ``peers`` counts requests per client port (one port, one connection).
    """

    def __init__(self, keep_alive: bool = False):
        import threading
        from collections import Counter
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.hits: Counter = Counter()
        self.peers: Counter = Counter()
        self.routes: dict = {}
        self.raw_routes: dict = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def log_message(self, *args):
                pass

            def do_GET(self):
                server.hits[self.path] += 1
                server.peers[self.client_address[1]] += 1
                if self.path in server.raw_routes:
                    server.raw_routes[self.path](self, server.hits[self.path])
                    return
                route = server.routes.get(self.path)
                if route is None:
                    self.send_error(404)
                    return
                status, headers, body = route(server.hits[self.path])
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # the default 5 makes concurrent fetchers wait on SYN retries

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def image(self, path: str, body: bytes, content_type: str = "image/png") -> str:
        self.routes[path] = lambda _n: (200, {"Content-Type": content_type}, body)
        return self.url(path)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def image_server():
    server = ImageServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, text_encoder, image_encoder):
    """A small model directory with a freshly initialised head (encoders are the real ones)."""
    from mmscore.model.card import HEAD_FILE, ModelCard
    from mmscore.model.entailment_head import build_entailment_head

    directory = tmp_path_factory.mktemp("model")
    head = build_entailment_head(text_encoder.dim, image_encoder.dim, seed=1)
    head.save(directory / HEAD_FILE)
    ModelCard(
        text_encoder=text_encoder.name,
        image_encoder=image_encoder.name,
        encoder_versions={},
        sequence_length=text_encoder.sequence_length,
        image_size=image_encoder.image_size,
        training_data_sha256="test",
    ).save(directory)
    return directory


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    """A real S3-compatible server (moto) on loopback, and the standard AWS_* variables pointing there, as a
    user's would (pyarrow, and Ray workers started after this, read them)."""
    pytest.importorskip("moto", reason="moto[server] is a dev dependency (pip install -e '.[dev]')")
    import socket
    import subprocess
    import sys
    import time

    port = _free_port()
    log = (tmp_path_factory.mktemp("moto") / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, "moto server did not start"
            time.sleep(0.2)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",  # never ask a link-local metadata service for credentials
        }.items():
            patch.setenv(name, value)
        yield f"http://127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=30)
    log.close()


def s3_filesystem(endpoint: str):
    """pyarrow's S3 client for the test server, allowed to create buckets (a user's would not be)."""
    import pyarrow.fs as pafs

    return pafs.S3FileSystem(endpoint_override=endpoint, allow_bucket_creation=True, region="us-east-1")
