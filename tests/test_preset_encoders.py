"""Any keras-hub preset as an encoder: tiny presets built here (random weights, real tokenizer vocabulary),
trained on real tweets, saved, reloaded from the card alone and scored; clear one-line errors otherwise."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_fetcher
from typer.testing import CliRunner

from mmscore.cli import app
from mmscore.errors import EncoderUnavailable, InvalidModelError
from mmscore.labels import LABELS, PROB_COLUMNS

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def _bert_preset(folder, seed: int):
    """A 2-layer BERT with the real MiniLM WordPiece vocabulary, random weights, saved as a keras-hub preset."""
    import keras
    import keras_hub

    from mmscore.encoders.text_minilm import model_dir

    keras.utils.set_random_seed(seed)
    vocabulary = (model_dir() / "vocab.txt").read_text().splitlines()
    tokenizer = keras_hub.tokenizers.BertTokenizer(vocabulary=vocabulary, lowercase=True)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocabulary),
        num_layers=2,
        num_heads=2,
        hidden_dim=32,
        intermediate_dim=64,
        max_sequence_length=128,
    )
    backbone.save_to_preset(folder)
    keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=64).save_to_preset(folder)
    return str(folder)


def _image_preset(folder, family: str):
    import keras
    import keras_hub

    keras.utils.set_random_seed(1)
    if family == "resnet":
        backbone = keras_hub.models.ResNetBackbone(
            input_conv_filters=[64],
            input_conv_kernel_sizes=[3],
            stackwise_num_filters=[64, 32],
            stackwise_num_blocks=[1, 1],
            stackwise_num_strides=[1, 2],
            block_type="basic_block",
            use_pre_activation=False,
            image_shape=(None, None, 3),
        )
        converter = keras_hub.layers.ResNetImageConverter(
            image_size=(64, 64),
            scale=[1 / (255 * 0.229), 1 / (255 * 0.224), 1 / (255 * 0.225)],
            offset=[-2.1, -2.0, -1.8],
        )
    else:
        backbone = keras_hub.models.VGGBackbone(
            stackwise_num_repeats=[1, 1], stackwise_num_filters=[8, 16], image_shape=(None, None, 3)
        )
        converter = keras_hub.layers.VGGImageConverter(image_size=(48, 48), scale=1 / 255.0)
    backbone.save_to_preset(folder)
    converter.save_to_preset(folder)
    return str(folder)


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    root = tmp_path_factory.mktemp("presets")
    return {
        "bert": _bert_preset(root / "bert", seed=0),
        "bert_other": _bert_preset(root / "bert_other", seed=7),
        "resnet": _image_preset(root / "resnet", "resnet"),
        "vgg": _image_preset(root / "vgg", "vgg"),
    }


@pytest.fixture(scope="module")
def real_rows(shared_data, tmp_path_factory):
    """20 real labelled tweet pairs per class (their image links are dropped: tests never leave loopback)."""
    df = pd.read_csv(shared_data / "tweets" / "tweets_trainval.csv", dtype=str).drop(columns=["image_1", "image_2"])
    rows = pd.concat([df[df["label"] == label].head(20) for label in LABELS])
    path = tmp_path_factory.mktemp("rows") / "train.csv"
    rows.to_csv(path, index=False)
    return path


def _train(data, out, text, image, cache_root, photos):
    from mmscore.training import TrainOptions, train_model

    options = TrainOptions(folds=2, epochs=4, heads=1, text_encoder=text, image_encoder=image)
    fetcher = make_fetcher(out.parent, image_root=data.parent)
    return train_model(data, out, fetcher, options=options, cache_root=cache_root, photos=photos)


@pytest.mark.parametrize("family", ["resnet", "vgg"])
def test_model_on_preset_folders_scores_from_its_card_alone(family, presets, real_rows, shared_data, tmp_path):
    """Train with a local BERT preset and a local image preset, then `mmscore score` rebuilds both from the card:
    its probabilities equal the encoders + head run in this process on the same texts and decoded images."""
    from mmscore.encoders.keras_hub_preset import PresetImageEncoder, PresetTextEncoder
    from mmscore.images.decode import decode_image
    from mmscore.model.predictor import Predictor

    out = tmp_path / "model"
    result = _train(
        real_rows, out, presets["bert"], presets[family], tmp_path / "emb", shared_data / "images" / "mediaeval2016"
    )
    card = json.loads((out / "model_card.json").read_text())
    assert card["text_encoder"] == presets["bert"] and card["image_encoder"] == presets[family]
    assert card["encoders"]["text"]["backbone"] == "BertBackbone"
    assert card["encoders"]["text"]["pooling"].startswith("pooled")  # BERT's trained pooler, not a sentence model
    assert card["encoders"]["image"]["backbone"] == {"resnet": "ResNetBackbone", "vgg": "VGGBackbone"}[family]
    assert result.card.uses_images  # unrelated photos were attached: the image path is trained

    scored = tmp_path / "scored.parquet"
    cli = CliRunner().invoke(
        app, ["score", str(SAMPLE / "pairs.csv"), "-o", str(scored), "--model", str(out), "--precision", "float32"]
    )
    assert cli.exit_code == 0, cli.output
    got = pd.read_parquet(scored)

    pairs = pd.read_csv(SAMPLE / "pairs.csv", dtype=str, keep_default_na=False)
    text = PresetTextEncoder(presets["bert"], card["sequence_length"])
    image = PresetImageEncoder(presets[family])
    features, mask = np.zeros((2, len(pairs), image.dim), np.float32), np.zeros((len(pairs), 2), np.float32)
    for side in (1, 2):
        for row, ref in enumerate(pairs[f"image_{side}"]):
            found = ref and (SAMPLE / ref).is_file()
            pixels = decode_image((SAMPLE / ref).read_bytes(), image.image_size).pixels if found else None
            if pixels is not None:  # missing files and the one that is not an image stay masked
                features[side - 1, row], mask[row, side - 1] = image.encode(pixels[None])[0], 1.0
    predictor = Predictor.load(out)
    expected = predictor.predict_embeddings(
        text.encode(list(pairs["text_1"])),
        text.encode(list(pairs["text_2"])),
        features[0],
        features[1],
        mask,
        predictor.pair_features(pairs["text_1"], pairs["text_2"]),
    )
    assert (got["image_1_status"] == "ok").sum() + (got["image_2_status"] == "ok").sum() == mask.sum() >= 30
    np.testing.assert_allclose(got[list(PROB_COLUMNS)].to_numpy(), expected, atol=2e-5)


def test_embedding_cache_never_reuses_vectors_of_other_weights(presets, real_rows, tmp_path):
    """Same data, same cache root, same preset folder: a second run encodes nothing; after the folder's
    weights are replaced (same architecture, same path), every text is encoded again."""
    import shutil

    folder, cache = tmp_path / "bert", tmp_path / "emb"
    shutil.copytree(presets["bert"], folder)
    first = _train(real_rows, tmp_path / "a", str(folder), presets["vgg"], cache, None)
    again = _train(real_rows, tmp_path / "b", str(folder), presets["vgg"], cache, None)
    shutil.rmtree(folder)
    shutil.copytree(presets["bert_other"], folder)
    registry_cache_clear()
    other = _train(real_rows, tmp_path / "c", str(folder), presets["vgg"], cache, None)
    assert first.encoded["text"] == 2 * 60 and again.encoded["text"] == 0
    assert other.encoded["text"] == 2 * 60


def registry_cache_clear():
    """Forget encoders built in this process (the registry builds each spec once per process)."""
    from mmscore.encoders import registry

    registry.text_encoder.cache_clear()
    registry.image_encoder.cache_clear()


def test_sentence_transformers_folder_gets_mean_pooling_and_the_registered_vectors(shared_data):
    """The MiniLM weights folder (Hugging Face format) read as a preset: mean pooling, from its 1_Pooling config,
    and the same vectors as the registered encoder on real tweets."""
    from mmscore.encoders import registry
    from mmscore.encoders.keras_hub_preset import PresetTextEncoder
    from mmscore.encoders.text_minilm import model_dir

    texts = list(pd.read_csv(shared_data / "tweets" / "tweets_trainval.csv", dtype=str)["text_1"].head(16))
    preset = PresetTextEncoder(str(model_dir()), 128)
    assert preset.pooling == "mean"
    cosine = (preset.encode(texts) * registry.text_encoder().encode(texts)).sum(1)
    assert cosine.min() > 0.999


def test_weights_other_than_the_cards_are_refused(presets, real_rows, tmp_path):
    from mmscore.model.predictor import Predictor

    out = tmp_path / "model"
    _train(real_rows, out, presets["bert"], presets["vgg"], tmp_path / "emb", None)
    card_path = out / "model_card.json"
    card = json.loads(card_path.read_text())
    card["text_encoder"] = presets["bert_other"]  # same architecture, other weights
    card_path.write_text(json.dumps(card))
    with pytest.raises(InvalidModelError, match="other weights than the model was trained with"):
        _ = Predictor.load(out).text_encoder


@pytest.mark.parametrize(
    "args, message",
    [
        (["--text-encoder", "./no/such/preset"], "text encoder './no/such/preset': no such preset folder"),
        (["--image-encoder", "{bert}"], "image encoder '{bert}': BertBackbone is not an image backbone"),
        (["--text-encoder", "{vgg}"], "text encoder '{vgg}': VGGBackbone is not a text backbone"),
        (["--text-encoder", "bert_base_en_uncased"], "text encoder 'bert_base_en_uncased': cannot load"),
    ],
)
def test_unknown_or_unreachable_encoder_stops_with_one_line(args, message, presets, real_rows, tmp_path):
    """No hub traceback: one line naming the encoder (a hub name is not resolved: the test session is fenced)."""
    args = [a.format(**presets) for a in args]
    result = CliRunner().invoke(app, ["train", str(real_rows), "--out", str(tmp_path / "m"), "--folds", "2", *args])
    assert result.exit_code == 2, result.output
    line = " ".join(result.output.split("error: ", 1)[-1].split())
    assert "error: " in result.output and message.format(**presets) in line
    assert "Traceback" not in result.output


def test_missing_encoder_in_a_card_is_one_line(model_dir, tmp_path):
    import shutil

    from mmscore.model.predictor import Predictor

    moved = tmp_path / "model"
    shutil.copytree(model_dir, moved)
    card = json.loads((moved / "model_card.json").read_text())
    card["image_encoder"] = str(tmp_path / "gone")
    (moved / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(EncoderUnavailable, match="image encoder '.*gone': no such preset folder"):
        _ = Predictor.load(moved).image_encoder


def test_a_model_on_preset_encoders_is_extended_with_its_own_encoders(presets, real_rows, tmp_path):
    """`train --base` on a preset-encoder model embeds the new rows with the base's presets (from its card), keeps
    the lineage, scores with those presets, and refuses another image encoder in one line."""
    import mmscore
    from mmscore.training import train

    base = tmp_path / "base"
    _train(real_rows, base, presets["bert"], presets["resnet"], tmp_path / "emb", None)
    new = tmp_path / "new.csv"
    pd.read_csv(SAMPLE / "plain_pairs.csv", dtype=str).head(12).to_csv(new, index=False)
    out = tmp_path / "extended"
    result = train(new, out, base=str(base), epochs=4, heads=1, offline=True)
    card = json.loads((out / "model_card.json").read_text())
    assert card["text_encoder"] == presets["bert"] and card["image_encoder"] == presets["resnet"]
    lineage = card["base"]
    assert lineage["base_dir"] == str(base) and lineage["new_rows"] == 12
    assert lineage["new_rows_main_head"] + lineage["new_rows_second_head"] == 12
    if lineage["new_rows_main_head"]:  # rows in the base's domain extend its main head, and CV reports them apart
        assert set(result.per_loss[result.chosen_loss]["groups"]) == {"base rows", "new rows"}
    if lineage["new_rows_second_head"]:  # the others its second head, on the presets' text vectors
        assert card["out_of_domain"]["rows"] == lineage["new_rows_second_head"]
    scored = mmscore.Scorer(out, precision="float32").score_frame(pd.read_csv(new, dtype=str))
    assert np.allclose(scored[list(PROB_COLUMNS)].sum(axis=1), 1, atol=1e-5)
    with pytest.raises(mmscore.errors.InputError, match="differs from the base model's"):
        train(new, tmp_path / "refused", base=str(base), image_encoder=presets["vgg"], offline=True)
