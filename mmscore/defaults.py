"""Every default a user can set, defined once: the library's signatures, its option records and the CLI's
flags all read them from here (a test holds the CLI's defaults against the library's). No heavy imports, so
the CLI can read them while `mmscore --help` stays instant."""

# scoring
BATCH_SIZE = 32  # pairs per model batch
CHUNK_BATCHES = 8  # a chunk (what is read, prepared and written at a time) is BATCH_SIZE * CHUNK_BATCHES rows
RAY_SHARD_CHUNKS = 4  # chunks per Ray shard (part) by default: big enough to amortise reading, small to retry
FETCH_WORKERS = 16  # concurrent image downloads
PRECISION = "auto"  # the encoders' number format: auto, float32, bfloat16 (mmscore.precision)
ENGINE = "local"

# training
MODEL_OUT = "model"
FOLDS = 5
SEED = 0
EPOCHS = 60
LOSS = "focal"  # won the comparison on the real tweets (train/README.md); comparing all three costs 3x the time
FINE_TUNE_EPOCHS = 2
HEADS = 3  # heads from different seeds, logits averaged: steadier across retrains (train/README.md)
CV_SEEDS = 1  # cross-validations, each with its own seed; the card lists each one's figures (the shipped model: 5)
NEW_WEIGHT = 10  # with --base: times each new labelled row is repeated in training (train/README.md)
TEXT_ENCODER = "minilm-l6-v2"
IMAGE_ENCODER = "mobilenet-v2-imagenet"

# report
LOW_CONFIDENCE = 0.6  # review threshold on the max probability (calibrated models: ~ expected accuracy)

# the pair reader (mmscore train-pair-reader)
PAIR_READER_EPOCHS = 2.0
PAIR_READER_BATCH = 32
PAIR_READER_ENCODER = "minilm-l6-v2"  # 4x faster to train; the shipped reader is mpnet-base-v2 (train/README.md)
