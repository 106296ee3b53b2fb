"""Fitting heads on frozen embeddings (seed heads averaged into one model); fine-tuning the text encoder with one."""

from __future__ import annotations

import numpy as np

from mmscore.labels import LABELS
from mmscore.training.embeddings import PairEmbeddings
from mmscore.training.options import TrainOptions

# Head steps are tiny: one graph call per step was mostly Python and dispatch overhead. Running many steps
# per call trains on the same batches in the same order, about twice as fast on a 2-core CPU.
STEPS_PER_EXECUTION = 32


def _loss_and_weights(loss: str, y: np.ndarray):
    import keras

    if loss == "focal":
        return keras.losses.CategoricalFocalCrossentropy(gamma=2.0, from_logits=True), None
    weights = None
    if loss == "class_weighted":
        counts = np.bincount(y, minlength=len(LABELS)).astype(np.float64)
        weights = {i: float(len(y) / (len(LABELS) * max(c, 1))) for i, c in enumerate(counts)}
    return keras.losses.CategoricalCrossentropy(from_logits=True), weights


def fit_head(
    emb: PairEmbeddings,
    y: np.ndarray,
    rows: np.ndarray,
    loss: str,
    options: TrainOptions,
    seed: int,
    epochs: int | None = None,
    name: str = "entailment_head",
):
    """A fresh head trained on ``rows`` for ``epochs`` (default: the options')."""
    import keras

    from mmscore.model.entailment_head import build_entailment_head

    keras.utils.set_random_seed(seed)
    pair_dim = 0 if emb.pair_features is None else emb.pair_features.shape[1]
    dims = (emb.text_1.shape[1], emb.image_1.shape[1])
    head = build_entailment_head(*dims, pair_feature_dim=pair_dim, seed=seed, name=name)
    if pair_dim:  # the features' scale is learned from the training rows only
        head.get_layer("pair_features_norm").adapt(emb.pair_features[rows])
    _compile_and_fit(
        head,
        emb.head_inputs(rows),
        y[rows],
        loss,
        learning_rate=options.learning_rate,
        weight_decay=1e-4,
        epochs=epochs or options.epochs,
        batch_size=options.batch_size,
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    return head


def _compile_and_fit(
    model, inputs, y: np.ndarray, loss: str, *, learning_rate, weight_decay, epochs, batch_size, **compile_options
):
    """Train ``model`` on ``inputs`` against labels ``y`` with ``loss`` (class weights when the loss asks for them)."""
    import keras

    loss_fn, class_weight = _loss_and_weights(loss, y)
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay), loss=loss_fn, **compile_options
    )
    model.fit(
        inputs,
        np.eye(len(LABELS), dtype=np.float32)[y],
        epochs=epochs,
        batch_size=batch_size,
        class_weight=class_weight,
        shuffle=True,
        verbose=0,
    )


HEAD_SEED_STRIDE = 7_919  # the j-th head of an ensemble starts from seed + j * stride (never another fold's seed)


def fit_heads(training_set: tuple, loss: str, options: TrainOptions, seed: int, epochs: int):
    """``options.heads`` heads on the same rows from different seeds, as one model averaging their logits."""
    from mmscore.model.entailment_head import average_heads

    count = 1 if options.fine_tune else options.heads  # the fine-tuned encoder is trained with one head
    names = ["entailment_head"] if count == 1 else [f"entailment_head_{j}" for j in range(count)]
    heads = [
        _weights_only(fit_head(*training_set, loss, options, seed + j * HEAD_SEED_STRIDE, epochs, name=name))
        for j, name in enumerate(names)
    ]
    return average_heads(heads) if len(heads) > 1 else heads[0]


def _weights_only(head):
    """The trained head as a fresh, never-compiled model with its weights: a saved model then holds no
    optimizer state (a third of the size)."""
    from mmscore.model.entailment_head import build_entailment_head

    dims = {t.name: int(t.shape[-1]) for t in head.inputs}
    fresh = build_entailment_head(
        dims["text_1"], dims["image_1"], pair_feature_dim=dims.get("pair_features", 0), name=head.name
    )
    fresh.set_weights(head.get_weights())
    # Normalization computes its scale from the adapted statistics once ("finalize"); loading a file does it too
    if "pair_features" in dims:
        fresh.get_layer("pair_features_norm").finalize_state()
    return fresh


def head_logits(head, emb: PairEmbeddings, rows=slice(None)) -> np.ndarray:
    return np.asarray(head.predict(emb.head_inputs(rows), batch_size=1024, verbose=0))


class FineTuner:
    """Fine-tunes the text encoder with a head, each time from the pretrained weights (so folds stay independent)."""

    def __init__(self, text_encoder, text_1: list[str], text_2: list[str]):
        from mmscore.model.preprocessor import PairPreprocessor

        self.text_encoder = text_encoder
        if getattr(text_encoder, "pooling", "mean") != "pooled":  # an unused pooler would only collect noise
            for layer in text_encoder.backbone.layers:
                layer.trainable = layer.trainable and layer.name != "pooled_dense"
        self.tokens = PairPreprocessor(text_encoder=text_encoder).tokens(text_1, text_2)
        self.pretrained = text_encoder.backbone.get_weights()

    def train(self, head, emb: PairEmbeddings, y: np.ndarray, rows: np.ndarray, loss: str, options: TrainOptions):
        """The end-to-end model after fine-tuning on ``rows``; ``head`` and the encoder are updated in place."""
        from mmscore.model.fine_tuning import end_to_end_model, model_inputs

        self.text_encoder.backbone.set_weights(self.pretrained)
        model = end_to_end_model(self.text_encoder, head, emb.image_1.shape[1])
        _compile_and_fit(
            model,
            model_inputs(self.tokens, emb, rows),
            y[rows],
            loss,
            learning_rate=options.fine_tune_learning_rate,
            weight_decay=1e-2,
            epochs=options.fine_tune_epochs,
            batch_size=options.fine_tune_batch_size,
            jit_compile=False,  # XLA compile time dwarfs these small runs
        )
        return model

    def logits(self, model, emb: PairEmbeddings, rows: np.ndarray) -> np.ndarray:
        from mmscore.model.fine_tuning import model_inputs

        inputs = model_inputs(self.tokens, emb, rows)
        # Plain calls: tracing a predict function for BERT costs more than these few batches.
        batches = [model([a[lo : lo + 64] for a in inputs], training=False) for lo in range(0, len(rows), 64)]
        return np.concatenate([np.asarray(b) for b in batches])
