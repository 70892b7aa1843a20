"""Agreement of an engine with the reference (transformers float32 on the CPU, same weights).

Two rules, chosen by the engine's numeric precision (``Engine.precision``):

- Full precision (``float32``, ``float16``, ``bfloat16``): at every position, for each of
  the reference's top-k tokens, |logprob_engine - logprob_ref| must stay within
  ``2 · (bound + rtol · max|x|)``, where bound and rtol are that precision's logits
  tolerance (conformance/tolerances.py) and max|x| the largest reference logit at that
  position. log-softmax moves by at most twice the largest logit change, so this is the
  logits tolerance carried over to logprobs, not a new number. Greedy outputs must be
  identical, or diverge only at a near-tie (the reference's own token and the engine's
  within the tie margin) with the engine's token in the reference's top-k: vLLM's rule
  against transformers.
- Quantized (GGUF ``Q8_0``/``Q4_0``/``F16`` weights): mean KL(p_ref || p_engine) and top-1
  agreement over all positions within the quality gates below, the same gates the GGUF
  format round trip applies to the dequantized weights.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from infersuite.conformance.compare import ConformanceError, render_context
from infersuite.conformance.tolerances import LOGITS_TOLERANCES, Tolerance

if TYPE_CHECKING:
    import torch

TOP_K = 5
# Quantized weights vs float32 over the shipped prompts' positions (max mean-KL nats, min
# top-1 agreement). Measured on llama-tiny / qwen2-tiny with the weights dequantized into
# transformers (random weights, 2 layers, 83 positions):
#   F16  KL 1.9e-6 / 2.2e-6, top-1 98.8% / 100% (one near-tie flip)
#   Q8_0 KL 1.5e-3 / 1.7e-3, top-1 92.8% / 94.0%
#   Q4_0 KL 0.29 / 0.33,     top-1 33.7% / 38.6%
# OpenVINO's 8-bit weights (nncf INT8_ASYM: one scale and zero point per output channel,
# coarser than Q8_0's blocks of 32), through the openvino engine, llama / qwen2 / gemma3 /
# gpt2-tiny: KL 2.8e-3 / 2.6e-3 / 2.1e-4 / 1.2e-3, top-1 90.4% / 94.0% / 95.2% / 90.4%;
# judged by the same gate as the other 8-bit format.
# Random tiny weights are far less compressible than trained ones (llama.cpp reports
# q8_0 KL ~ 1e-3 on Llama-3-8B), hence the loose Q4_0 gate.
QUANTIZED_GATES: Mapping[str, tuple[float, float]] = {
    "F16": (1e-4, 0.95),
    "Q8_0": (1e-2, 0.80),
    "Q4_0": (1.0, 0.15),
    "INT8_ASYM": (1e-2, 0.80),
    "INT8_PTQ": (1e-2, 0.80),
}


@dataclass(frozen=True)
class LogprobAgreement:
    """How far an engine's logprobs are from the reference's, over many positions."""

    max_abs_diff: float  # over the reference's top-k tokens, all positions
    worst_ratio: float  # |Δ logprob| / its bound at the position closest to (or past) it
    where: dict[str, int]  # prompt, position, token there
    diff_there: float
    bound_there: float
    mean_kl: float
    max_kl: float
    top1_agreement: float
    n_positions: int

    def describe(self) -> str:
        return (f"max |Δ logprob| {self.max_abs_diff:.3e} (top-{TOP_K}), KL mean "
                f"{self.mean_kl:.3e} max {self.max_kl:.3e} nats, top-1 "
                f"{self.top1_agreement:.2%} over {self.n_positions} positions")


def logprob_bound(tolerance: Tolerance, max_abs_logit: float) -> float:
    """The largest |Δ logprob| the logits tolerance allows at a position."""
    return 2.0 * (tolerance.bound_for(max_abs_logit) + tolerance.rtol * max_abs_logit)


def compute_logprob_agreement(engine_logits: Sequence[torch.Tensor],
                              reference_logits: Sequence[torch.Tensor],
                              tolerance: Tolerance) -> LogprobAgreement:
    """Per prompt, logits [T, V] of the engine and of the reference at the same positions."""
    import torch

    max_diff = 0.0
    worst: tuple[float, dict[str, int], float, float] = (-1.0, {}, 0.0, 0.0)
    kls, same, total = [], 0, 0
    for prompt, (got, want) in enumerate(zip(engine_logits, reference_logits, strict=True)):
        ref = torch.log_softmax(want.double(), -1)
        eng = torch.log_softmax(got.double(), -1)
        top = ref.topk(min(TOP_K, ref.shape[-1]), -1).indices
        diff = (eng.gather(-1, top) - ref.gather(-1, top)).abs()
        peak, column = diff.max(-1)
        bounds = torch.tensor([logprob_bound(tolerance, float(m))
                               for m in want.double().abs().amax(-1)], dtype=torch.float64)
        ratio = peak / bounds
        position = int(ratio.argmax())
        if float(ratio[position]) > worst[0]:
            where = {"prompt": prompt, "position": position,
                     "token": int(top[position, column[position]])}
            worst = (float(ratio[position]), where, float(peak[position]),
                     float(bounds[position]))
        max_diff = max(max_diff, float(peak.max()))
        kls.append((ref.exp() * (ref - eng)).sum(-1))
        same += int((eng.argmax(-1) == ref.argmax(-1)).sum())
        total += ref.shape[0]
    all_kl = torch.cat(kls)
    return LogprobAgreement(max_diff, *worst, float(all_kl.mean()), float(all_kl.max()),
                            same / total, total)


def check_logprob_agreement(agreement: LogprobAgreement, precision: str, what: str,
                            context: Mapping[str, Any]) -> None:
    """Full precision: the bound at every position; quantized: the KL and top-1 gates."""
    if precision in QUANTIZED_GATES:
        max_kl, min_top1 = QUANTIZED_GATES[precision]
        if agreement.mean_kl > max_kl or agreement.top1_agreement < min_top1:
            raise ConformanceError(
                f"{what}: {agreement.describe()}; {precision} gate: mean KL <= {max_kl:g}, "
                f"top-1 >= {min_top1:.0%} [{render_context(context)}]")
        return
    if agreement.worst_ratio > 1.0:
        where = ", ".join(f"{k}={v}" for k, v in agreement.where.items())
        raise ConformanceError(
            f"{what}: |Δ logprob| {agreement.diff_there:.3e} exceeds the {precision} bound "
            f"{agreement.bound_there:.3e} (2 x logits tolerance "
            f"{LOGITS_TOLERANCES[precision].describe()}) at {where}; "
            f"{agreement.describe()} [{render_context(context)}]")


def precision_tolerance(precision: str,
                        overrides: Mapping[str, float] | None = None) -> Tolerance:
    """The logits tolerance of a full precision (with --infer-tolerance overrides);
    quantized precisions use the float32 one for greedy near-ties (their logprobs are
    judged by KL and top-1 instead)."""
    from infersuite.conformance.tolerances import resolve_tolerance

    return resolve_tolerance(precision if precision in LOGITS_TOLERANCES else "float32",
                             overrides)


def check_greedy_agreement(engine_tokens: torch.Tensor, reference_tokens: torch.Tensor,
                           reference_logits: torch.Tensor, tolerance: Tolerance, what: str,
                           context: Mapping[str, Any]) -> int | None:
    """Greedy tokens [S] equal the reference's, or first differ at a near-tie where the
    engine's token is among the reference's top-k. Returns the divergence step (None when
    identical); raises ConformanceError otherwise."""
    mismatch = (engine_tokens.cpu() != reference_tokens.cpu()).nonzero()
    if mismatch.numel() == 0:
        return None
    step = int(mismatch[0, 0])
    got, want = int(engine_tokens[step]), int(reference_tokens[step])
    logits = reference_logits[step].double()
    tie_margin = tolerance.tie_margin(float(logits.abs().max()))
    margin = float(logits[want] - logits[got])
    top = logits.topk(min(TOP_K, logits.shape[-1])).indices.tolist()
    if margin <= tie_margin and got in top:
        return step
    raise ConformanceError(
        f"{what}: greedy tokens differ at step={step}: engine {got}, reference {want}; "
        f"reference logit margin {margin:.3e} (tie margin {tie_margin:.3e}); engine's token "
        f"{'in' if got in top else 'not in'} the reference's top-{TOP_K} {top}; "
        f"reference {reference_tokens.tolist()}, engine {engine_tokens.tolist()} "
        f"[{render_context(context)}]")
