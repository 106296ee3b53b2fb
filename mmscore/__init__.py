"""mmscore: batch multimodal entailment for pairs of posts (text + image).

The Python API is :class:`mmscore.Scorer` (imported on first use, so the CLI starts fast).
"""

from mmscore.version import __version__

__all__ = ["Scorer", "__version__"]


def __getattr__(name: str):
    if name == "Scorer":
        from mmscore.scorer import Scorer

        return Scorer
    raise AttributeError(f"module 'mmscore' has no attribute {name!r}")
