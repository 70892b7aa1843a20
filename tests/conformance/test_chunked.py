"""The chunked long-audio procedure: where windows fall, how their tokens are stitched."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from infersuite.conformance.chunked import (  # noqa: E402
    check_chunked_runs,
    cut_windows,
    special_ids_of,
    stitch_windows,
)
from infersuite.conformance.compare import ConformanceError  # noqa: E402
from infersuite.conformance.tolerances import Tolerance  # noqa: E402
from infersuite.engines.asr import free_greedy_rows  # noqa: E402


@pytest.fixture(scope="module")
def extractor():
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(feature_size=80)


def test_windows_overlap_by_the_stride_and_the_last_is_short(extractor):
    import numpy as np

    wave = np.zeros(75 * 16_000, dtype=np.float32)
    windows = cut_windows(wave, extractor, chunk_s=30.0, stride_s=5.0)
    assert windows.spans_s == [(0.0, 30.0), (20.0, 50.0), (40.0, 70.0), (60.0, 75.0)]
    assert tuple(windows.features.shape) == (4, 80, 3000)


def test_audio_shorter_than_a_window_is_one_window(extractor):
    import numpy as np

    windows = cut_windows(np.zeros(16_000 * 7, dtype=np.float32), extractor, 30.0, 5.0)
    assert windows.spans_s == [(0.0, 7.0)]


def test_windows_that_would_not_advance_are_refused(extractor):
    import numpy as np

    with pytest.raises(ValueError, match="chunk_s=10 must be more than twice stride_s=5"):
        cut_windows(np.zeros(16_000, dtype=np.float32), extractor, 10.0, 5.0)


def test_stitching_aligns_the_overlap_and_drops_special_tokens():
    rows = [[1, 10, 11, 12, 13, 14], [1, 13, 14, 15, 16], [1, 15, 16, 17, 2]]
    assert stitch_windows(rows, frozenset({1, 2})) == [10, 11, 12, 13, 14, 15, 16, 17]
    # Whisper's rule aligns on two matching tokens or more: one alone is not an overlap
    assert stitch_windows([[13, 14, 15, 16], [16, 17]], frozenset()) == [13, 14, 15, 16, 16, 17]
    assert stitch_windows([[1, 5, 6]], frozenset({1})) == [5, 6]
    assert stitch_windows([], frozenset()) == []


def test_free_greedy_rows_end_where_end_of_text_would_have_been_chosen():
    tokens = torch.tensor([[5, 6, 7], [8, 9, 4]])
    logits = torch.zeros(2, 3, 10)
    logits[0, 0, 5] = logits[0, 1, 2] = logits[0, 2, 7] = 1.0  # <eot>=2 wins at step 1
    logits[1, 0, 8] = logits[1, 1, 9] = logits[1, 2, 4] = 1.0  # never
    assert free_greedy_rows(tokens, logits, eos=2) == [[5], [8, 9, 4]]
    assert free_greedy_rows(tokens, logits, eos=None) == [[5, 6, 7], [8, 9, 4]]


def test_special_ids_come_from_the_config():
    from types import SimpleNamespace

    config = SimpleNamespace(decoder_start_token_id=1, eos_token_id=2, pad_token_id=2,
                             bos_token_id=None)
    assert special_ids_of(config) == frozenset({1, 2})


def _runs(rows):
    """Greedy runs whose step logits pick each row's tokens with a margin of 1."""
    tokens = torch.tensor(rows)
    logits = torch.zeros(*tokens.shape, 20)
    logits.scatter_(2, tokens.unsqueeze(-1), 1.0)
    return tokens, logits


def test_a_window_off_the_reference_fails_naming_the_window_and_its_span(extractor):
    import numpy as np

    windows = cut_windows(np.zeros(16_000 * 50, dtype=np.float32), extractor, 30.0, 5.0)
    expected = _runs([[10, 11, 12], [12, 13, 14]])
    actual = (expected[0].clone(), expected[1].clone())
    actual[1][1, 2, 5] += 1e-3
    with pytest.raises(ConformanceError, match=r"chunked window vs the reference: step logits: "
                       r"max abs diff 1\.000e-03 .* at step=2, vocab=5: .*window=1, "
                       r"span_s=20-50"):
        check_chunked_runs(actual, expected, windows, Tolerance(1e-5, 1e-5), {}, None,
                           frozenset())
    result = check_chunked_runs(expected, expected, windows, Tolerance(1e-5, 1e-5), {}, None,
                                frozenset())
    assert result.to_dict() == {"windows": 2, "stitched_tokens": 6, "same_transcript": True,
                                "near_tie_windows": []}
