"""Preprocessing and postprocessing: encode/decode, batch padding, padding side."""

from __future__ import annotations

import pytest

from infersuite.conformance.inputs import load_prompts

pytestmark = pytest.mark.conformance


def test_encode_decode_round_trip(infer_tokenizer):
    for prompt in load_prompts():
        ids = infer_tokenizer(prompt, add_special_tokens=False)["input_ids"]
        decoded = infer_tokenizer.decode(ids, skip_special_tokens=True)
        assert decoded == prompt, f"round trip changed {prompt!r} -> {decoded!r} (ids {ids})"


def test_batch_pads_to_rectangle_with_mask(infer_tokenizer):
    short, long = "Hi", max(load_prompts(), key=len)
    solo = [infer_tokenizer(p, add_special_tokens=False)["input_ids"] for p in (short, long)]
    batch = infer_tokenizer([short, long], add_special_tokens=False, padding=True)
    width = max(len(ids) for ids in solo)
    for row, ids in enumerate(solo):
        got_ids, mask = batch["input_ids"][row], batch["attention_mask"][row]
        assert len(got_ids) == len(mask) == width, f"row {row} is not padded to width {width}"
        assert sum(mask) == len(ids), (
            f"row {row}: attention_mask has {sum(mask)} ones for {len(ids)} real tokens")
        real = [t for t, m in zip(got_ids, mask, strict=True) if m]
        assert real == ids, f"row {row}: unmasked ids {real} differ from the solo encoding {ids}"
        padded = [t for t, m in zip(got_ids, mask, strict=True) if not m]
        assert all(t == infer_tokenizer.pad_token_id for t in padded), (
            f"row {row}: masked positions hold {padded}, not pad id {infer_tokenizer.pad_token_id}")


def test_padding_side_is_left_for_generation(infer_tokenizer):
    assert infer_tokenizer.padding_side == "left", (
        f"padding_side={infer_tokenizer.padding_side!r}: generation appends after the last "
        "column, so prompts must be left-padded")
    batch = infer_tokenizer(["Hi", max(load_prompts(), key=len)], padding=True,
                            add_special_tokens=False)
    last_column = [mask[-1] for mask in batch["attention_mask"]]
    assert last_column == [1, 1], "a row's last position is padding: the batch is right-padded"
