import io
import pickle

import numpy as np
import pytest

from mmscore.doctor import PHOTO_CHECKS, load_photo, sample_photo_path, top_classes
from mmscore.encoders.torch_legacy import LEGACY_MAGIC, UnsafeCheckpointError, loads_legacy_state_dict


@pytest.mark.parametrize("photo", sorted(PHOTO_CHECKS))
def test_pretrained_image_encoder_classifies_real_photos(image_encoder, photo):
    top = top_classes(image_encoder, load_photo(sample_photo_path(photo), image_encoder.image_size))
    assert {i for i, _ in top} & PHOTO_CHECKS[photo], top


def test_random_image_encoder_fails_the_same_photos():
    from mmscore.encoders.image_mobilenet import MobileNetImageEncoder

    random_model = MobileNetImageEncoder(pretrained=False)
    hits = [
        bool({i for i, _ in top_classes(random_model, load_photo(sample_photo_path(p), 224))} & expected)
        for p, expected in PHOTO_CHECKS.items()
    ]
    assert not all(hits)


def test_image_logits_repeat_and_survive_reload_from_cache(image_encoder):
    from mmscore.encoders.image_mobilenet import MobileNetImageEncoder

    photo = load_photo(sample_photo_path("coffee.png"), 224)[None]
    first = np.asarray(image_encoder.model(photo)["logits"])
    second = np.asarray(image_encoder.model(photo)["logits"])
    reloaded = MobileNetImageEncoder()
    assert reloaded.loaded_from == "cache"
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(np.asarray(reloaded.model(photo)["logits"]), first, rtol=1e-5, atol=1e-5)


def test_paraphrases_are_closer_than_unrelated_text(text_encoder):
    a, b, c = text_encoder.encode(
        ["A man is playing a guitar on stage.", "On the stage, a man plays the guitar.", "Interest rates rose again."]
    )
    assert a @ b > a @ c + 0.3


def test_accented_text_is_not_unknown(text_encoder):
    ids = text_encoder.tokenize(["Café naïve résumé à Zürich"])[0].numpy()[0]
    assert text_encoder.tokenizer.token_to_id("[UNK]") not in ids


def test_each_text_is_encoded_alone(text_encoder):
    """Encoding a text next to another must not change it (no pair concatenation, no cross-talk)."""
    alone = text_encoder.encode(["The canal reopened today."])[0]
    batched = text_encoder.encode(["The canal reopened today.", "A completely different sentence about cats."])[0]
    np.testing.assert_allclose(alone, batched, atol=1e-5)


def _pickle_stream(*objs) -> bytes:
    buf = io.BytesIO()
    for obj in objs:
        pickle.dump(obj, buf, protocol=2)
    return buf.getvalue()


class _CallsSystem:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_unpickler_refuses_code_execution():
    blob = _pickle_stream(LEGACY_MAGIC, 1001, {"little_endian": True}, {"weight": _CallsSystem()})
    with pytest.raises(UnsafeCheckpointError, match="system"):
        loads_legacy_state_dict(blob)


def test_unpickler_rejects_a_non_checkpoint():
    with pytest.raises(ValueError, match="magic"):
        loads_legacy_state_dict(_pickle_stream(12345))


def test_real_checkpoint_loads_as_arrays():
    from mmscore.encoders.mobilenet_v2 import torch_checkpoint_path
    from mmscore.encoders.torch_legacy import load_legacy_state_dict

    state = load_legacy_state_dict(torch_checkpoint_path())
    assert state["features.0.0.weight"].shape == (32, 3, 3, 3)
    assert state["classifier.1.weight"].shape == (1000, 1280)
    assert np.isfinite(state["classifier.1.weight"]).all()


def test_cli_help_is_fast_and_does_not_import_tensorflow():
    import subprocess
    import sys

    code = "import sys; from mmscore.cli import app; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
