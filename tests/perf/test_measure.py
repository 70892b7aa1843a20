"""Measurement core: exact TTFT/ITL/TPOT arithmetic on a fake clock, and on a real tiny model."""

from __future__ import annotations

import gc
import itertools

import pytest
import torch

from infersuite.engines import hf
from infersuite.engines.base import EngineSpec
from infersuite.engines.hf_engine import HFEngine
from infersuite.measure.clocks import HostTimeline, make_timeline
from infersuite.measure.hooks import TokenMarkProcessor, token_mark_hooks
from infersuite.measure.memory import kv_cache_bytes, weight_bytes
from infersuite.measure.records import compute_request_metrics
from infersuite.measure.request import RequestInput, run_timed_request
from infersuite.measure.scaling import compute_loglog_slope
from infersuite.measure.timing import collect_after_warmup, time_rounds
from infersuite.measure.tokens import TimelineError, compute_request_timing

MS = 1_000_000  # ns


def _scripted_clock(stamps_ms):
    it = iter(stamps_ms)
    return lambda: int(next(it) * MS)


def test_fake_clock_gives_exact_request_metrics():
    timeline = HostTimeline(_scripted_clock([0, 1, 2, 10, 13, 17, 18, 20]))
    processor = TokenMarkProcessor(lambda: timeline.mark("token"))
    timeline.mark("start")
    timeline.mark("tokenized")
    timeline.mark("padded")
    for _ in range(3):
        processor("input ids", "scores")  # once per step, after its forward pass
    timeline.mark("generated")
    timeline.mark("end")
    timing = compute_request_timing(timeline.labels(), timeline.resolve_s())
    assert timing.n_generated == 3
    assert timing.e2e_s == pytest.approx(0.020)
    assert timing.ttft_s == pytest.approx(0.010)
    assert timing.itl_s == pytest.approx((0.003, 0.004))
    assert timing.tpot_s == pytest.approx((0.020 - 0.010) / 2)
    assert timing.stages == pytest.approx({"tokenize_s": 0.001, "pad_s": 0.001,
                                           "prefill_s": 0.008, "decode_s": 0.007,
                                           "detokenize_s": 0.002})


def test_one_token_has_no_tpot_and_no_token_is_an_error():
    timing = compute_request_timing(["start", "token", "end"], [0.0, 0.5, 1.0])
    assert timing.itl_s == ()
    assert timing.tpot_s != timing.tpot_s  # NaN
    metrics = compute_request_metrics([timing])
    assert metrics["tpot_s"] == []
    assert metrics["e2e_s"] == [1.0]
    with pytest.raises(TimelineError, match="generated token"):
        compute_request_timing(["start", "end"], [0.0, 1.0])


def test_time_rounds_measures_only_after_warmup_with_gc_off():
    calls, gc_states = [], []
    clock = itertools.count(0, 1_000)

    def fn():
        calls.append(1)
        gc_states.append(gc.isenabled())

    samples = time_rounds(fn, rounds=4, warmup_rounds=2, now_ns=lambda: next(clock))
    assert samples == pytest.approx([1e-6] * 4)
    assert len(calls) == 6
    assert gc_states[2:] == [False] * 4
    assert gc.isenabled()


def test_collect_after_warmup_drops_warmup_results():
    counter = itertools.count()
    wrapped, results = collect_after_warmup(lambda: next(counter), warmup_rounds=2)
    for _ in range(5):
        wrapped()
    assert results == [2, 3, 4]


def test_cpu_timeline_is_host_clock():
    assert isinstance(make_timeline("cpu"), HostTimeline)


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="no CUDA device: event timing runs on GPU hosts only")
def test_cuda_timeline_uses_events():  # pragma: no cover - GPU hosts only
    timeline = make_timeline("cuda")
    timeline.mark("start")
    torch.ones(1024, 1024, device="cuda").sum()
    timeline.mark("end")
    times = timeline.resolve_s()
    assert times[0] == 0.0
    assert times[1] >= 0.0


def test_loglog_slope_recovers_the_exponent():
    sizes = [8, 16, 32, 64]
    assert compute_loglog_slope(sizes, [3e-3 * n**2 for n in sizes]) == pytest.approx(2.0)
    assert compute_loglog_slope(sizes, [1e-3 * n for n in sizes]) == pytest.approx(1.0)
    assert compute_loglog_slope([8, 8], [1.0, 2.0]) is None


@pytest.fixture(scope="module")
def tiny():
    from infersuite.models.loader import load_model

    return load_model("llama-tiny", torch.float32, "cpu", False)


@pytest.mark.parametrize("n_new", [1, 5])
def test_streamer_timestamps_on_a_tiny_model(tiny, n_new):
    request = RequestInput(None, ((17, 18, 19, 20),))
    timing = run_timed_request(HFEngine(EngineSpec("hf"), tiny.model), request, n_new)
    assert timing.n_generated == n_new
    assert len(timing.itl_s) == n_new - 1
    assert 0 < timing.ttft_s <= timing.e2e_s
    if n_new > 1:
        assert timing.tpot_s == pytest.approx((timing.e2e_s - timing.ttft_s) / (n_new - 1))


def test_text_request_includes_tokenize_stage(tiny):
    request = RequestInput(("Why is the sky blue?",), ((0,),))
    timing = run_timed_request(HFEngine(EngineSpec("hf"), tiny.model, tiny.tokenizer),
                               request, 3)
    assert set(timing.stages) == {"tokenize_s", "pad_s", "prefill_s", "decode_s", "detokenize_s"}
    assert timing.n_generated == 3


def test_token_marks_are_the_same_hook_on_every_device():
    """One TTFT definition: the mark is the logits processor on the CPU and on CUDA alike;
    no streamer (whose host copy marks later, and synchronizes on a GPU)."""
    hooks = token_mark_hooks(lambda: None)
    assert set(hooks) == {"logits_processor"}
    assert isinstance(hooks["logits_processor"][0], TokenMarkProcessor)
    assert token_mark_hooks(None) == {}


def test_logits_processor_marks_each_step(tiny):
    timeline = HostTimeline()
    processor = TokenMarkProcessor(lambda: timeline.mark("token"))
    ids, mask = hf.pad_left([[17, 18, 19]], 0)
    with torch.inference_mode():
        tiny.model.generate(input_ids=ids, attention_mask=mask, do_sample=False,
                            max_new_tokens=6, min_new_tokens=6, pad_token_id=0,
                            logits_processor=[processor])
    assert processor.n_steps == 6
    assert timeline.labels() == ["token"] * 6


def test_weight_and_kv_cache_bytes(tiny):
    from infersuite.conformance.kv_cache import compute_kv_cache_bytes, describe_cache_layers

    params = sum(p.numel() * p.element_size() for p in tiny.model.parameters())
    assert weight_bytes(tiny.model) >= params * 0.5  # tied embeddings counted once
    ids, mask = hf.pad_left([[17, 18, 19, 20, 21]], 0)
    _, cache = hf.prefill(tiny.model, ids, mask)
    expected = compute_kv_cache_bytes(describe_cache_layers(tiny.model.config, 1, 5), 4)
    assert kv_cache_bytes(cache) == expected


def test_peak_host_memory_is_per_measurement():
    """A 256 MiB allocation raises the peak; without a reset the peak keeps it after the
    memory is freed (the run-long figure the report used to carry), after reset_peaks the
    next measurement's peak no longer includes it."""
    import numpy as np

    from infersuite.measure.memory import peak_host_rss_bytes, reset_peaks

    if reset_peaks("cpu") != "measurement":
        pytest.skip("this kernel cannot reset the peak RSS (/proc/self/clear_refs)")
    big = np.ones(256 * 2**20 // 8)
    with_big = peak_host_rss_bytes()
    del big
    assert peak_host_rss_bytes() > with_big - 2**20  # control: freed, still the peak
    assert reset_peaks("cpu") == "measurement"
    after = peak_host_rss_bytes()
    assert with_big - after > 200 * 2**20, (with_big, after)
