"""mmscore: batch multimodal entailment for pairs of posts (text + image)."""

__version__ = "0.1.0"
