"""mmscore: batch multimodal entailment for pairs of posts (text + image).

The Python API: :class:`mmscore.Scorer` (scoring), :func:`mmscore.train` (training) and
:func:`mmscore.nli_probabilities` (the pair reader), each imported on first use, so the CLI starts fast.
"""

from mmscore.version import __version__

__all__ = ["Scorer", "nli_probabilities", "train", "__version__"]


def nli_probabilities(texts_1, texts_2, model=None):
    """The pair reader's ``(n, 3)`` float32 probabilities, columns entailment, neutral, contradiction (SNLI's
    meaning: a hypothesis about another scene counts as a contradiction). ``model``: a model directory, a loaded
    :class:`~mmscore.model.predictor.Predictor`, or None for the shipped model (loaded once, then reused).

    >>> mmscore.nli_probabilities(["The concert is cancelled."], ["The concert goes ahead as planned."])
    """
    from mmscore.model.predictor import Predictor, shared_predictor

    predictor = model if isinstance(model, Predictor) else shared_predictor(model)
    return predictor.nli_probabilities(texts_1, texts_2)


def __getattr__(name: str):
    if name == "Scorer":
        from mmscore.scorer import Scorer

        return Scorer
    if name == "train":
        from mmscore.training.recipe import train

        return train
    raise AttributeError(f"module 'mmscore' has no attribute {name!r}")
