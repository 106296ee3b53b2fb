import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Every test run gets its own cache root, so runs never see each other's images or weights."""
    os.environ["MMSCORE_CACHE_DIR"] = str(tmp_path_factory.mktemp("mmscore-cache"))


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
