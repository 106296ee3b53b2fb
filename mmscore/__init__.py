"""mmscore: batch multimodal entailment for pairs of posts (text + image).

The Python API is :class:`mmscore.Scorer` (imported on first use, so the CLI starts fast).
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "Scorer":
        from mmscore.scorer import Scorer

        return Scorer
    raise AttributeError(f"module 'mmscore' has no attribute {name!r}")
