"""The byte tokenizer: exact round trips, truncation keeps BOS/EOS, masks mark real tokens."""

import pytest
import torch

from wallwm_core.tokenizer import BOS_ID, EOS_ID, PAD_ID, VOCAB_SIZE, ByteTokenizer


def test_round_trip_including_non_ascii():
    tokenizer = ByteTokenizer()
    for text in ["press the red button", "", "greifen: Würfel → Kiste"]:
        ids, mask = tokenizer.encode([text], max_length=64)
        assert tokenizer.decode(ids[0]) == text
        assert int(mask.sum()) == len(text.encode()) + 2


def test_padding_truncation_and_ids_in_vocabulary():
    tokenizer = ByteTokenizer()
    ids, mask = tokenizer.encode(["a", "a much longer instruction"], max_length=8)
    assert ids.shape == (2, 8) and ids.dtype == torch.long
    assert ids[0].tolist()[:3] == [BOS_ID, 3 + ord("a"), EOS_ID]
    assert ids[0, 3:].eq(PAD_ID).all() and not mask[0, 3:].any()
    assert ids[1, 0] == BOS_ID and ids[1, -1] == EOS_ID and mask[1].all()
    assert int(ids.max()) < VOCAB_SIZE


def test_rejects_bad_arguments():
    tokenizer = ByteTokenizer()
    with pytest.raises(ValueError, match="max_length"):
        tokenizer.encode(["x"], max_length=1)
    with pytest.raises(TypeError, match="sequence of strings"):
        tokenizer.encode("x", max_length=8)
