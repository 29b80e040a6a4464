"""Hashed character n-grams across scripts, computed with torch operations."""

from __future__ import annotations

import pytest
import torch

from training.features import code_points, featurise


def grams_of(features, item):
    start, length = int(features.starts[item]), int(features.lengths[item])
    return features.grams[start:start + length].tolist()


def test_every_script_gives_ngrams_and_distinct_texts_differ():
    texts = ["good product", "منتج جيد", "很好的产品", "अच्छा उत्पाद", "", "a"]
    features = featurise(texts, "cpu", ngrams=(1, 2, 3), buckets=2**16)
    for item, text in enumerate(texts):
        length = len(text) + 2  # two markers bracket every text
        expected = length + (length - 1) + max(length - 2, 0)
        assert int(features.lengths[item]) == expected, text
    assert int(features.lengths.sum()) == len(features.grams)
    assert features.grams.min() >= 0 and features.grams.max() < 2**16
    bags = [set(grams_of(features, i)) for i in range(4)]
    for i in range(4):
        for j in range(i + 1, 4):
            assert len(bags[i] & bags[j]) < len(bags[i]) / 2, (texts[i], texts[j])


def test_ngrams_never_cross_items_and_do_not_depend_on_neighbours():
    alone = featurise(["世界"], "cpu", ngrams=(3,), buckets=1000)
    together = featurise(["你好", "世界", "مرحبا"], "cpu", ngrams=(3,), buckets=1000)
    assert grams_of(alone, 0) == grams_of(together, 1)
    assert int(together.lengths[1]) == 2  # "\x02世界\x03" has two trigrams


def test_case_is_folded_and_code_points_are_laid_out_flat():
    upper = featurise(["GUT"], "cpu", buckets=1000)
    lower = featurise(["gut"], "cpu", buckets=1000)
    assert grams_of(upper, 0) == grams_of(lower, 0)
    codes, lengths = code_points(["ab", "हि"])
    assert lengths.tolist() == [4, 4]
    assert codes.tolist() == [2, ord("a"), ord("b"), 3, 2, ord("ह"), ord("ि"), 3]


def test_batch_gathers_each_items_run_for_embedding_bag():
    features = featurise(["one", "two words", "三"], "cpu", buckets=500)
    grams, offsets = features.batch(torch.tensor([2, 0]))
    assert offsets.tolist() == [0, int(features.lengths[2])]
    assert grams.tolist() == grams_of(features, 2) + grams_of(features, 0)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="ngrams"):
        featurise(["x"], "cpu", ngrams=(0,))
    with pytest.raises(ValueError, match="buckets"):
        featurise(["x"], "cpu", buckets=0)
