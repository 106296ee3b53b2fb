"""Training the pair reader (:mod:`mmscore.model.pair_reader`) from a file of premise / hypothesis / label pairs.

A product path, not a notebook: tokenisation is cached (keyed by the file's bytes and the tokenizer), batches
group pairs of similar length, a checkpoint is written every few hundred steps and ``resume`` continues from
the last one with the same batches in the same order, the dev split is held out by group (SNLI's ``captionID``:
pairs sharing a premise never straddle the split), and TensorFlow places the work on a GPU when one is present.
"""

from __future__ import annotations

import hashlib
import json
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from mmscore import defaults
from mmscore.errors import InputError
from mmscore.io.file_hash import file_sha256
from mmscore.model.pair_reader import (
    MINILM,
    MPNET,
    NLI_LABELS,
    PAIR_READER_FILE,
    PairFormat,
    PairReaderConfig,
    base_weights_sha256,
    build_network,
    lay_weights,
    pack_pairs,
    read_kept,
    read_meta,
    read_pairs,
    reader_tokenizer,
    save_pair_reader,
    token_lists,
)
from mmscore.training.card import data_sha256

# Column names accepted for the two texts, the label and the group (first present wins).
PREMISE = ("premise", "sentence1", "text_1")
HYPOTHESIS = ("hypothesis", "sentence2", "text_2")
LABEL = ("label", "gold_label")
GROUP = ("captionID", "group")
CHECKPOINT = "checkpoint.npz"
SHUFFLE_WINDOW = 50  # batches: pairs are sorted by length inside each window of this many batches
# A LoRA adapter's default peak rate per encoder: mpnet-base at MiniLM's 1e-3 diverged to chance (train/README.md)
LORA_RATES = {MINILM: 1e-3, MPNET: 2e-4}
FULL_RATE = 5e-5  # every layer tuned (no adapter)


@dataclass(frozen=True)
class PairReaderOptions:
    """How to train a pair reader (``mmscore train-pair-reader``'s options)."""

    data: str
    out: Path
    epochs: float = 1.0
    batch_size: int = 32
    learning_rate: float = 0.0  # 0: the encoder's LORA_RATES for an adapter, FULL_RATE for full layers
    lora_rank: int = 0
    dev_share: float = 0.02
    max_pairs: int = 0  # 0: all
    seed: int = 0
    resume: bool = False
    checkpoint_every: int = 250
    warmup_share: float = 0.06
    encoder: str = defaults.PAIR_READER_ENCODER  # the transformer under the reader (model.pair_reader.ENCODERS)
    start_from: str = ""  # a pair reader file to continue from (same encoder and rank); "": the package weights
    swap_contradictions: bool = False  # also train each contradiction with its texts swapped (it is symmetric)

    def __post_init__(self):
        from mmscore.model.pair_reader import ENCODERS

        if self.encoder not in ENCODERS:
            raise InputError(f"unknown pair reader encoder {self.encoder!r}; choose from {', '.join(ENCODERS)}")

    @property
    def rate(self) -> float:
        return self.learning_rate or (LORA_RATES[self.encoder] if self.lora_rank else FULL_RATE)


@dataclass
class NliPairs:
    """Labelled pairs as token ids (what training reads), with their groups."""

    ids_1: list[np.ndarray]
    ids_2: list[np.ndarray]
    labels: np.ndarray  # indices into NLI_LABELS
    groups: np.ndarray  # str
    dropped: int = 0  # rows without one of the three labels (SNLI's "-")

    def subset(self, rows: np.ndarray) -> NliPairs:
        return NliPairs([self.ids_1[i] for i in rows], [self.ids_2[i] for i in rows], self.labels[rows],
                        self.groups[rows])  # fmt: skip

    def __len__(self) -> int:
        return len(self.labels)

    def with_contradictions_swapped(self) -> NliPairs:
        """These pairs and, once more, each contradiction with its two texts swapped: "A contradicts B" is "B
        contradicts A", while entailment and neutral do not turn around."""
        rows = np.flatnonzero(self.labels == NLI_LABELS.index("contradiction"))
        return NliPairs(self.ids_1 + [self.ids_2[i] for i in rows], self.ids_2 + [self.ids_1[i] for i in rows],
                        np.concatenate([self.labels, self.labels[rows]]),
                        np.concatenate([self.groups, self.groups[rows]]), self.dropped)  # fmt: skip


@dataclass
class PairReaderResult:
    path: Path
    facts: dict = field(default_factory=dict)


def _column(frame, names: tuple[str, ...], what: str, path: str) -> str:
    for name in names:
        if name in frame.columns:
            return name
    raise InputError(f"{path}: no {what} column (expected one of {', '.join(names)})")


def read_nli_frame(path: str):
    """A CSV/Parquet file of pairs -> DataFrame ``premise, hypothesis, label, group`` (label a string)."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{path}: no such file")
    try:
        frame = pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p, dtype=str, keep_default_na=False)
    except Exception as exc:  # noqa: BLE001  (any reader failure is the file's fault: one line)
        raise InputError(f"{path}: cannot read as {'Parquet' if p.suffix == '.parquet' else 'CSV'} ({exc})") from exc
    premise = _column(frame, PREMISE, "premise", path)
    hypothesis = _column(frame, HYPOTHESIS, "hypothesis", path)
    label = _column(frame, LABEL, "label", path)
    group = next((name for name in GROUP if name in frame.columns), premise)  # no group: pairs of one premise
    return pd.DataFrame(
        {
            "premise": frame[premise].fillna("").astype(str),
            "hypothesis": frame[hypothesis].fillna("").astype(str),
            "label": frame[label].fillna("").astype(str).str.strip().str.lower(),
            "group": frame[group].astype(str),
        }
    )


def tokenised_pairs(path: str, tokenizer, cache_dir: Path | None) -> NliPairs:
    """The file's labelled pairs as token ids, read from the cache when the same bytes were tokenised before."""
    vocabulary = tokenizer.vocabulary_size()
    key = hashlib.sha256(f"{data_sha256(path)}/{vocabulary}/strip_accents".encode()).hexdigest()
    cached = None if cache_dir is None else Path(cache_dir) / f"nli-tokens-{key[:24]}.npz"
    if cached is not None and cached.is_file():
        with np.load(cached, allow_pickle=False) as z:
            return NliPairs(np.split(z["flat_1"], z["cuts_1"]), np.split(z["flat_2"], z["cuts_2"]), z["labels"],
                            z["groups"], int(z["dropped"]))  # fmt: skip
    frame = read_nli_frame(path)
    known = frame["label"].isin(NLI_LABELS)
    dropped = int((~known).sum())
    frame = frame[known].reset_index(drop=True)
    if not len(frame):
        raise InputError(f"{path}: no pair labelled {', '.join(NLI_LABELS)}")
    ids_1, ids_2 = token_lists(tokenizer, frame["premise"]), token_lists(tokenizer, frame["hypothesis"])
    labels = frame["label"].map({name: i for i, name in enumerate(NLI_LABELS)}).to_numpy(np.int64)
    pairs = NliPairs(ids_1, ids_2, labels, frame["group"].to_numpy(str), dropped)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp.npz")
        np.savez(tmp, flat_1=np.concatenate(ids_1), cuts_1=np.cumsum([len(a) for a in ids_1])[:-1],
                 flat_2=np.concatenate(ids_2), cuts_2=np.cumsum([len(b) for b in ids_2])[:-1], labels=labels,
                 groups=pairs.groups, dropped=dropped)  # fmt: skip
        tmp.replace(cached)
    return pairs


def dev_rows(groups: np.ndarray, share: float) -> np.ndarray:
    """Which rows are held out for dev: a stable ``share`` of the groups (by a hash of the group, not its order)."""
    cut = int(share * 10_000)
    return np.array([zlib.crc32(str(g).encode()) % 10_000 < cut for g in groups], bool)


def epoch_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """One epoch's batches: shuffled, sorted by length inside windows of :data:`SHUFFLE_WINDOW` batches (little
    padding), then the batches shuffled. Fixed by ``seed`` and ``epoch``, so a resumed run sees the same batches."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    window = batch_size * SHUFFLE_WINDOW
    batches = []
    for start in range(0, len(order), window):
        part = order[start : start + window]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def evaluate(network, pairs: NliPairs, fmt: PairFormat, max_tokens: int, batch_size: int = 128) -> np.ndarray:
    """Probabilities ``(n, 3)`` of ``pairs`` under ``network``."""
    import tensorflow as tf

    def step(ids, seg):
        return tf.nn.softmax(network([ids, seg], training=False), -1)

    return read_pairs(step, pairs.ids_1, pairs.ids_2, fmt, max_tokens, batch_size)


def _random_states(network) -> list:
    """Dropout's random states: kept with a checkpoint, so a resumed run draws the masks an unbroken run would."""
    return [v for v in network.non_trainable_variables if "seed_generator" in v.path]


def _save_checkpoint(path: Path, network, optimizer, step: int, meta: dict) -> None:
    arrays = {f"w{i}": v.numpy() for i, v in enumerate(network.trainable_weights)}
    arrays.update({f"o{i}": v.numpy() for i, v in enumerate(optimizer.variables)})
    arrays.update({f"s{i}": v.numpy() for i, v in enumerate(_random_states(network))})
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, step=step, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
    tmp.replace(path)  # a crash mid-write leaves the previous checkpoint whole


def _load_checkpoint(path: Path, network, optimizer, meta: dict) -> int:
    with np.load(path, allow_pickle=False) as z:
        saved = json.loads(bytes(z["meta"]).decode())
        if saved != meta:
            changed = sorted(k for k in set(saved) | set(meta) if saved.get(k) != meta.get(k))
            raise InputError(f"{path}: written for other training settings ({', '.join(changed)}); drop --resume")
        for i, v in enumerate(network.trainable_weights):
            v.assign(z[f"w{i}"])
        for i, v in enumerate(optimizer.variables):
            v.assign(z[f"o{i}"])
        for i, v in enumerate(_random_states(network)):
            v.assign(z[f"s{i}"])
        return int(z["step"])


def _finished(path: Path, meta: dict) -> PairReaderResult:
    """A run resumed after it finished: its pair reader, when it was trained with these settings and data."""
    facts = read_meta(path).get("facts", {})
    # an option added since the file was written was at its default then
    defaults = {f.name: f.default for f in fields(PairReaderOptions)}
    trained = {**defaults, **facts.get("options", {}), "data_sha256": facts.get("data_sha256")}
    wanted = {k: v for k, v in meta.items() if k != "data"}
    if any(trained.get(k) != v for k, v in wanted.items()):
        changed = sorted(k for k, v in wanted.items() if trained.get(k) != v)
        raise InputError(f"{path}: trained with other settings or data ({', '.join(changed)}); use another --out")
    return PairReaderResult(path, facts)


@dataclass
class _Steps:
    """What the training loop leaves: its losses, the step it resumed from, and how long the steps took."""

    losses: list[float] = field(default_factory=list)
    resumed_from: int = 0
    pairs: int = 0  # pairs trained in this process (not the resumed ones)
    seconds: float = 0.0


def _split(options: PairReaderOptions, tokenizer, cache_dir: Path | None) -> tuple[NliPairs, NliPairs, NliPairs]:
    """All pairs, the training pairs and the dev pairs (held out by group); a file too small is refused."""
    from mmscore.cache_location import user_cache_dir

    pairs = tokenised_pairs(options.data, tokenizer, cache_dir or user_cache_dir() / "tokens")
    held = dev_rows(pairs.groups, options.dev_share)
    train_rows = np.flatnonzero(~held)
    if options.max_pairs:
        train_rows = train_rows[: options.max_pairs]
    train, dev = pairs.subset(train_rows), pairs.subset(np.flatnonzero(held))
    if options.swap_contradictions:
        train = train.with_contradictions_swapped()
    if len(train) < options.batch_size:
        raise InputError(f"{options.data}: {len(train)} training pairs, fewer than one batch")
    return pairs, train, dev


def _optimizer(options: PairReaderOptions, total_steps: int, network):
    """AdamW with a linear warm-up to the learning rate, then a cosine decay to zero."""
    import keras

    warmup = max(1, int(options.warmup_share * total_steps))
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, max(1, total_steps - warmup), alpha=0.0, warmup_target=options.rate, warmup_steps=warmup
    )
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=0.01)
    optimizer.build(network.trainable_weights)
    return optimizer


def _step_function(network, optimizer):
    """One compiled training step: the loss of a batch, after applying its gradients."""
    import keras
    import tensorflow as tf

    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(reduce_retracing=True)
    def step(token_ids, segment_ids, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, network([token_ids, segment_ids], training=True))
        grads = tape.gradient(loss, network.trainable_weights)
        optimizer.apply_gradients(zip(grads, network.trainable_weights, strict=True))
        return loss

    return step


def _schedule(lengths: np.ndarray, options: PairReaderOptions, total_steps: int):
    """``(steps done after this batch, batch)`` for every step of the run, epoch after epoch."""
    done, epoch = 0, 0
    while True:
        for batch in epoch_batches(lengths, options.batch_size, options.seed, epoch):
            if done >= total_steps:
                return
            done += 1
            yield done, batch
        epoch += 1


def _run_steps(options, train: NliPairs, fmt: PairFormat, network, config, meta, total_steps: int, on_progress):
    """The training loop: from the checkpoint when resuming (its batches are skipped, not retrained), writing one
    every ``checkpoint_every`` steps, reporting after each."""
    checkpoint = options.out / CHECKPOINT
    optimizer = _optimizer(options, total_steps, network)
    step = _step_function(network, optimizer)
    options.out.mkdir(parents=True, exist_ok=True)
    run = _Steps()
    if options.resume and checkpoint.is_file():
        run.resumed_from = _load_checkpoint(checkpoint, network, optimizer, meta)
    lengths = np.array([len(a) + len(b) for a, b in zip(train.ids_1, train.ids_2, strict=True)])
    total_pairs, started = total_steps * options.batch_size, time.perf_counter()
    for done, batch in _schedule(lengths, options, total_steps):
        if done <= run.resumed_from:
            continue
        ids, seg = pack_pairs([train.ids_1[i] for i in batch], [train.ids_2[i] for i in batch], fmt, config.max_tokens)
        run.losses.append(float(step(ids, seg, train.labels[batch])))
        run.pairs += len(batch)
        if done % options.checkpoint_every == 0:
            _save_checkpoint(checkpoint, network, optimizer, done, meta)
        if on_progress:
            on_progress(min(done * options.batch_size, total_pairs), total_pairs, float(np.mean(run.losses[-50:])))
    run.seconds = time.perf_counter() - started
    return run


def _facts(options, meta: dict, pairs: NliPairs, train: NliPairs, dev: NliPairs, total_steps: int, run: _Steps):
    """What the saved pair reader's file says about its training."""
    import tensorflow as tf

    return {
        "trained_on": Path(options.data).name,
        "data_sha256": meta["data_sha256"],
        "train_pairs": len(train),
        "dev_pairs": len(dev),
        "dropped_unlabelled": pairs.dropped,
        "steps": total_steps,
        "resumed_from_step": run.resumed_from,
        "options": {k: v for k, v in meta.items() if k not in ("data", "data_sha256")},
        "device": "GPU" if tf.config.list_physical_devices("GPU") else "CPU",
        "train_seconds": round(run.seconds, 1),
        "pairs_per_second": round(run.pairs / max(run.seconds, 1e-9), 1),
        "final_loss": round(float(np.mean(run.losses[-200:])), 4) if run.losses else None,
    }


def _existing(path: Path, what: str) -> Path:
    if not path.is_file():
        raise InputError(f"{path}: no such {what}")
    return path


def _start_from(path: Path, network, config: PairReaderConfig) -> None:
    """Lay an earlier pair reader's kept weights over the fresh network: training continues from its reading."""
    _, earlier, weights = read_kept(path)
    if earlier.encoder != config.encoder:
        raise InputError(f"{path}: built on {earlier.encoder}, not {config.encoder}; pass --encoder {earlier.encoder}")
    if earlier.lora_rank != config.lora_rank:
        raise InputError(f"{path}: LoRA rank {earlier.lora_rank}, not {config.lora_rank}; pass --lora-rank "
                         f"{earlier.lora_rank}")  # fmt: skip
    if earlier.base_weights_sha256 and earlier.base_weights_sha256 != config.base_weights_sha256:
        raise InputError(f"{path}: trained from other {config.encoder} weights than the installed package's")
    lay_weights(network, weights, path)


def train_pair_reader(
    options: PairReaderOptions,
    on_progress: Callable[[int, int, float], None] | None = None,
    cache_dir: Path | None = None,
) -> PairReaderResult:
    """Train, checkpoint, evaluate on the dev split, and write ``options.out / pair_reader.npz``.
    ``on_progress(pairs_done, pairs_total, mean_loss)`` after every step."""
    import keras

    from mmscore.precision import encoder_dtype, resolve_precision

    started, precision, path = time.perf_counter(), resolve_precision("auto"), options.out / PAIR_READER_FILE
    skip = ("out", "resume", "checkpoint_every", "start_from")
    meta = {k: v for k, v in asdict(options).items() if k not in skip}
    meta.update(data_sha256=data_sha256(options.data), precision=precision)
    if options.start_from:  # by its bytes, not its name
        start = _existing(Path(options.start_from), "pair reader file")
        meta["start_from_sha256"] = file_sha256(start)
    if options.resume and not (options.out / CHECKPOINT).is_file() and path.is_file():
        return _finished(path, meta)  # nothing to train: no tokenising, no network
    tokenizer, fmt = reader_tokenizer(options.encoder)
    pairs, train, dev = _split(options, tokenizer, cache_dir)
    keras.utils.set_random_seed(options.seed)  # before building: the classifier's start and dropout's states
    fresh = PairReaderConfig(options.lora_rank, encoder=options.encoder)
    network, _ = build_network(fresh, encoder_dtype(precision))
    config = replace(fresh, base_weights_sha256=base_weights_sha256(network))
    if options.start_from:
        _start_from(Path(options.start_from), network, config)
    total_steps = max(1, round(options.epochs * -(-len(train) // options.batch_size)))
    run = _run_steps(options, train, fmt, network, config, meta, total_steps, on_progress)
    facts = _facts(options, meta, pairs, train, dev, total_steps, run)
    if len(dev):
        probs = evaluate(network, dev, fmt, config.max_tokens)
        facts["dev_accuracy"] = round(float((probs.argmax(1) == dev.labels).mean()), 4)
    facts["seconds"] = round(time.perf_counter() - started, 1)
    save_pair_reader(path, network, config, facts)
    (options.out / CHECKPOINT).unlink(missing_ok=True)
    return PairReaderResult(path, facts)
