"""Post-training quantization of the openvino engine's two graphs with nncf.quantize.

Both graphs are calibrated on what they see when the engine runs: the prefill graph on
left-padded batches of calibration text, the decode graph on the feeds (new token, mask,
flat past keys/values) its float32 version receives while decoding greedily from that
text. The text is never what the checks judge (conformance/inputs.py): the adder's
training problems for the adder, the shipped encoder sentences for the other models.
nncf's transformer preset keeps the softmax and normalizations in float and quantizes the
matrix multiplications' inputs and weights to 8 bits.
"""

from __future__ import annotations

import logging
from typing import Any

CALIBRATION_TEXTS = 12
BATCH = 4
DECODE_STEPS = 6


class RecordingSession:
    """A session that keeps a copy of every feed it runs (the decode graph's inputs)."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.feeds: list[dict[str, Any]] = []

    def get_inputs(self) -> list[Any]:
        return self.session.get_inputs()

    def run(self, output_names: list[str] | None, feed: dict[str, Any]) -> list[Any]:
        self.feeds.append({name: value.copy() for name, value in feed.items()})
        return self.session.run(output_names, feed)


def _batches(ids: list[list[int]], pad_id: int) -> list[tuple[Any, Any]]:
    from infersuite.engines import hf

    return [hf.pad_left(ids[i:i + BATCH], pad_id) for i in range(0, len(ids), BATCH)]


def calibration_batches(tokenizer: Any | None, vocab_size: int, pad_id: int,
                        model_name: str = "") -> list[tuple[Any, Any]]:
    from infersuite.conformance.inputs import build_calibration_ids

    ids = build_calibration_ids(tokenizer, vocab_size, CALIBRATION_TEXTS,
                                model_name=model_name)
    return _batches(ids, pad_id)


def quantize(model: Any, feeds: list[dict[str, Any]]) -> Any:
    """nncf post-training quantization (transformer preset) calibrated on all `feeds`."""
    import nncf

    logging.getLogger("nncf").setLevel(logging.WARNING)  # its tables and progress
    return nncf.quantize(model, nncf.Dataset(feeds), model_type=nncf.ModelType.TRANSFORMER,
                         subset_size=len(feeds))


def quantize_prefill(model: Any, batches: list[tuple[Any, Any]]) -> Any:
    feeds = [{"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
             for ids, mask in batches]
    return quantize(model, feeds)


def quantize_decode(model: Any, float_session: Any, kv_heads: int, head_dim: int,
                    batches: list[tuple[Any, Any]]) -> Any:
    """`float_session`: the float32 decode graph compiled (an OvSession)."""
    from infersuite.engines.onnx import OrtDecoder

    recorder = RecordingSession(float_session)
    decoder = OrtDecoder(recorder, kv_heads, head_dim)
    for ids, mask in batches:
        decoder.greedy(ids, mask, DECODE_STEPS)
    return quantize(model, recorder.feeds)
