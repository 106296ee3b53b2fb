"""Every status a row can report, and their groupings, in one place.

``image_1_status`` / ``image_2_status`` say what became of each image reference; ``text_status`` flags rows
whose texts were empty or unreadable (they are still scored and kept in place). The README's status table is
held against :data:`IMAGE_STATUSES` and :data:`TEXT_STATUSES` by a test.
"""

from __future__ import annotations

# image statuses: what happened to one image reference
OK = "ok"  # fetched or read, and decoded
CACHED = "cached"  # taken from the image cache
MISSING = "missing"  # empty cell: no image given
NOT_FOUND = "not_found"  # a local path that does not exist
TIMEOUT = "timeout"
CONNECTION_ERROR = "connection_error"
TRUNCATED = "truncated"
TOO_LARGE = "too_large"
NOT_AN_IMAGE = "not_an_image"
CORRUPT_IMAGE = "corrupt_image"
TOO_MANY_PIXELS = "too_many_pixels"
TOO_MANY_REDIRECTS = "too_many_redirects"
BLOCKED_PRIVATE = "blocked_private"
BLOCKED_SCHEME = "blocked_scheme"
DNS_ERROR = "dns_error"
DNS_TIMEOUT = "dns_timeout"
HOST_UNREACHABLE = "host_unreachable"  # the host was given up earlier in this run
OFFLINE_MISS = "offline_miss"
BAD_URL = "bad_url"
BLOCKED_PATH = "blocked_path"  # a local path outside the image root
NOT_A_FILE = "not_a_file"  # a folder, FIFO, device or socket
BAD_PATH = "bad_path"
READ_ERROR = "read_error"
FETCH_ERROR = "fetch_error"  # an unexpected error (logged at debug level)
HTTP_PREFIX = "http_"  # http_404, http_503, ...: any answer that is not a success


def http(code: int) -> str:
    """The status of an HTTP answer with ``code``."""
    return f"{HTTP_PREFIX}{code}"


IMAGE_STATUSES = (
    OK,
    CACHED,
    MISSING,
    NOT_FOUND,
    TIMEOUT,
    CONNECTION_ERROR,
    TRUNCATED,
    TOO_LARGE,
    NOT_AN_IMAGE,
    CORRUPT_IMAGE,
    TOO_MANY_PIXELS,
    TOO_MANY_REDIRECTS,
    BLOCKED_PRIVATE,
    BLOCKED_SCHEME,
    DNS_ERROR,
    DNS_TIMEOUT,
    HOST_UNREACHABLE,
    OFFLINE_MISS,
    BAD_URL,
    BLOCKED_PATH,
    NOT_A_FILE,
    BAD_PATH,
    READ_ERROR,
    FETCH_ERROR,
)

# groupings
SEEN = (OK, CACHED)  # the model saw this image
UNREACHABLE = frozenset({DNS_ERROR, DNS_TIMEOUT})  # nothing was reached: counts towards giving a host up
RETRY_HTTP_CODES = frozenset({429, 500, 502, 503, 504})
RETRYABLE = frozenset({http(c) for c in RETRY_HTTP_CODES} | {CONNECTION_ERROR, TRUNCATED})  # worth another try


def failed(status: str) -> bool:
    """An image that was given but could not be used (neither seen nor simply absent)."""
    return status not in SEEN and status != MISSING


# text statuses: one per row
TEXT_OK = "ok"
INVALID_UTF8 = "invalid_utf8"  # CSV bytes that are not UTF-8, replaced by U+FFFD
MALFORMED_ROW = "malformed_row"  # a CSV record with the wrong number of fields or broken quoting
EMPTY_PREFIX = "empty_"  # empty_text_1, empty_text_2, empty_text_1_and_text_2


def empty_texts(columns: list[str]) -> str:
    """The status of a row whose ``columns`` (text_1 and/or text_2) are empty."""
    return EMPTY_PREFIX + "_and_".join(columns)


TEXT_STATUSES = (
    TEXT_OK,
    empty_texts(["text_1"]),
    empty_texts(["text_2"]),
    empty_texts(["text_1", "text_2"]),
    INVALID_UTF8,
    MALFORMED_ROW,
)
