"""Batching: continuous batching (transformers) and a dynamic batcher (any engine with
padded batches) give each request what it gets alone; each comparison reports whether it
is bitwise or within tolerance."""

from __future__ import annotations

import pytest
import torch

from infersuite.conformance.compare import (
    ConformanceError,
    check_greedy_runs,
    check_same_tokens,
)
from infersuite.engines import batcher, hf

pytestmark = pytest.mark.conformance



# Different prompt lengths and different output lengths, more requests than fit in
# one batch, so requests join and leave while others are running.
MAX_NEW_TOKENS = (3, 9, 5, 12, 2, 7)
MAX_BATCH = 3


def _requests(infer_case) -> list[batcher.Request]:
    prompts = infer_case.prompt_ids()
    return [batcher.Request(f"r{i}", tuple(p), MAX_NEW_TOKENS[i % len(MAX_NEW_TOKENS)],
                            arrival_s=0.004 * i)
            for i, p in enumerate(prompts)]


def _solo(infer_case, prompt, n_new: int) -> tuple[torch.Tensor, torch.Tensor]:
    engine = infer_case.engine
    tokens, logits = engine.generate_greedy(*hf.pad_left([prompt], engine.pad_id), n_new)
    return tokens[0], logits[0]


def _report(record_property, infer_case, what: str, rows: list[dict]) -> None:
    bitwise = all(r["bitwise"] for r in rows)
    diffs = [r["max_abs_diff"] for r in rows if r["max_abs_diff"] is not None]
    max_diff = max(diffs) if diffs else None
    record_property("bitwise", bitwise)
    record_property("max_logit_abs_diff", max_diff)
    diff_text = "n/a (no logits)" if max_diff is None else f"{max_diff:.3e}"
    print(f"[{infer_case.id}] {what}: bitwise={bitwise} max_logit_abs_diff={diff_text} "
          f"over {len(rows)} requests")


def _compare_cb_tokens(infer_case, index: int, prompt, got: list[int], n_new: int) -> dict:
    """CB with EOS disabled may emit the EOS id where generate_greedy suppresses it:
    the runs agree up to there only if EOS is the reference's unsuppressed argmax."""
    want, logits = _solo(infer_case, prompt, n_new)
    context = {**infer_case.context, "request": index, "prompt_len": len(prompt),
               "max_new_tokens": n_new}
    if len(got) != n_new:
        raise ConformanceError(f"continuous batching returned {len(got)} tokens for request "
                               f"{index}, asked for max_new_tokens={n_new}: {got} "
                               f"[{', '.join(f'{k}={v}' for k, v in context.items())}]")
    got_t = torch.tensor(got)
    eos = set(hf.eos_ids(infer_case.model))
    differ = (got_t != want).nonzero()
    compared = n_new
    if differ.numel():
        step = int(differ[0, 0])
        if got[step] in eos and int(logits[step].argmax()) == got[step]:
            compared = step
    check_same_tokens(got_t[None, :compared], want[None, :compared],
                      "continuous batching vs the request alone (greedy tokens)", context,
                      logits[None, :compared],
                      tie_margin=infer_case.tolerance.tie_margin(float(logits.abs().max())))
    return {"bitwise": compared == n_new and bool(torch.equal(got_t, want)),
            "max_abs_diff": None, "compared_steps": compared}


def test_continuous_batching_matches_solo(infer_case, record_property):
    infer_case.require("transformers")  # transformers' own continuous batching manager
    requests = _requests(infer_case)
    try:
        outputs = batcher.run_continuous_batching(
            infer_case.model, [r.prompt for r in requests],
            [r.max_new_tokens for r in requests], max_requests_per_batch=MAX_BATCH)
    except batcher.ContinuousBatchingUnavailable as exc:
        pytest.skip(f"continuous batching unavailable: {exc}")
    failed = [(i, o.error) for i, o in enumerate(outputs) if o.error is not None]
    if failed:
        pytest.fail(f"continuous batching failed requests {failed} [{infer_case.id}]")
    rows = [_compare_cb_tokens(infer_case, i, r.prompt, list(o.generated_tokens),
                               r.max_new_tokens)
            for i, (r, o) in enumerate(zip(requests, outputs, strict=True))]
    record_property("compared_steps", [r["compared_steps"] for r in rows])
    _report(record_property, infer_case, "continuous batching tokens vs solo", rows)
    _check_requests_overlapped(outputs, infer_case.id)


def _check_requests_overlapped(outputs, case_id: str) -> None:
    """With more requests than fit, one must join after another has left.

    Every supported transformers (>= 5.17) stamps each output's lifespan (start, finish);
    a missing or unset one fails here, since without it nothing shows that requests joined
    while others ran."""
    assert len(outputs) > MAX_BATCH, (
        f"only {len(outputs)} requests for at most {MAX_BATCH} per batch: none has to join "
        f"as another leaves [{case_id}]")
    spans = [getattr(o, "lifespan", None) for o in outputs]
    untimed = [(i, s) for i, s in enumerate(spans) if s is None or not 0 <= s[0] <= s[1]]
    assert not untimed, (
        f"continuous batching reported no (start, finish) lifespan for requests {untimed} "
        f"(index, lifespan): cannot tell whether requests joined as others left [{case_id}]")
    first_finish = min(s[1] for s in spans)
    last_start = max(s[0] for s in spans)
    assert last_start >= first_finish, (
        f"all {len(spans)} requests started before any finished (max {MAX_BATCH} per batch): "
        f"spans {spans}; continuous batching did not let requests join as others left "
        f"[{case_id}]")


def _compare_completion(infer_case, request, completion) -> dict:
    tokens, logits = _solo(infer_case, request.prompt, request.max_new_tokens)
    context = {**infer_case.context, "request": request.request_id,
               "batch": completion.batch_index, "batch_size": completion.batch_size,
               "prompt_len": len(request.prompt)}
    # Step logits are compared up to the first token divergence only: after a near-tie
    # flip the two runs continue different sequences.
    [result] = check_greedy_runs(
        (torch.tensor(completion.tokens)[None], completion.logits[None]),
        (tokens[None], logits[None]), infer_case.tolerance,
        "dynamic batcher vs the request alone", context)
    return {"bitwise": bool(torch.equal(completion.logits, logits)),
            "max_abs_diff": result.max_abs_diff}


def test_dynamic_batcher_matches_solo(infer_case, record_property):
    """Simulated arrivals grouped by max batch size / max wait, each batch one left-padded
    greedy generation on the engine."""
    infer_case.require("padded_batch", "greedy")
    requests = _requests(infer_case)
    batches, done = batcher.run_planned(infer_case.engine, requests, max_batch_size=MAX_BATCH,
                                        max_wait_s=0.01)
    record_property("batches", [[r.request_id for r in b.requests] for b in batches])
    assert len(batches) > 1, f"all requests fell into one batch: {batches}"
    assert any(len(b.requests) > 1 for b in batches), (
        f"no batch held more than one request: {batches}; nothing was batched together")
    rows = [_compare_completion(infer_case, r, done[r.request_id]) for r in requests]
    _report(record_property, infer_case, "dynamic batcher vs solo", rows)
