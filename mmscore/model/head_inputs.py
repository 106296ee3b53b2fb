"""The entailment head's input contract, in one place: input names, their shapes, and how arrays map to them.

Training (cached embeddings), scoring (encoder outputs inside the compiled step) and fine-tuning (an
end-to-end model around the head) all build the head's inputs here, so adding an input is a one-file edit
plus the layer that consumes it. The names are stored in every saved ``head.keras``: never rename one.
"""

from __future__ import annotations

TEXT_1 = "text_1"
TEXT_2 = "text_2"
IMAGE_1 = "image_1"
IMAGE_2 = "image_2"
IMAGE_MASK = "image_mask"  # (n, 2): 1 where that post's image was decoded (and the model uses images)
LEXICAL = "pair_features"  # (n, d) lexical overlap features of the two texts; only in heads trained with them
NAMES = (TEXT_1, TEXT_2, IMAGE_1, IMAGE_2, IMAGE_MASK, LEXICAL)


def head_inputs(text_1, text_2, image_1, image_2, image_mask, lexical=None) -> dict:
    """The head's inputs by name (numpy arrays, tensors or symbolic inputs alike); ``lexical=None`` leaves it out."""
    inputs = {TEXT_1: text_1, TEXT_2: text_2, IMAGE_1: image_1, IMAGE_2: image_2, IMAGE_MASK: image_mask}
    if lexical is not None:
        inputs[LEXICAL] = lexical
    return inputs


def keras_inputs(text_dim: int, image_dim: int, lexical_dim: int = 0) -> dict:
    """Symbolic ``keras.Input``s for a new head (the lexical input only when ``lexical_dim`` > 0)."""
    import keras

    return head_inputs(
        keras.Input((text_dim,), name=TEXT_1),
        keras.Input((text_dim,), name=TEXT_2),
        keras.Input((image_dim,), name=IMAGE_1),
        keras.Input((image_dim,), name=IMAGE_2),
        keras.Input((2,), name=IMAGE_MASK),
        keras.Input((lexical_dim,), name=LEXICAL) if lexical_dim else None,
    )


def lexical_width(head) -> int:
    """How many lexical features ``head`` takes (0: none)."""
    widths = [int(t.shape[-1]) for t in head.inputs if t.name == LEXICAL]
    return widths[0] if widths else 0


def in_head_order(head, by_name: dict) -> list:
    """``by_name``'s values in the order of ``head.inputs`` (a dict of symbolic tensors is matched by sorted key)."""
    return [by_name[t.name] for t in head.inputs]
