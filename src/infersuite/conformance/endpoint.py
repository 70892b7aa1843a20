"""Judging a server's answers: against each other, against the API's rules, against the
reference (transformers float32 on the same weights).

A server names the tokens it returns by their text (or, where it can, as ``token_id:N``).
``TokenTexts`` maps the model's ids to the text a server shows for them (the token's bytes
decoded as UTF-8 with incomplete characters dropped, special tokens empty): a token
matches the reference when the texts agree, and a log-probability is compared only for
tokens whose text no other id shares. Every failure names the request, the step (the
generated token's index), what each side had, and by how much.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from infersuite.conformance.agreement import QUANTIZED_GATES, TOP_K, logprob_bound
from infersuite.conformance.compare import ConformanceError, render_context
from infersuite.conformance.tolerances import Tolerance

if TYPE_CHECKING:
    import torch

    from infersuite.serving.client import Completion


@dataclass(frozen=True)
class TokenTexts:
    """The text a server shows for each token id."""

    texts: tuple[str, ...]

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, vocab_size: int) -> TokenTexts:
        special = set(getattr(tokenizer, "all_special_ids", []) or [])
        texts = []
        for token in range(vocab_size):
            if token in special or token >= len(tokenizer):
                texts.append("")
                continue
            texts.append(tokenizer.decode([token]).replace("\ufffd", ""))
        return cls(tuple(texts))

    def ids_for(self, text: str) -> list[int]:
        if text.startswith("token_id:") and text[9:].isdigit():
            return [int(text[9:])]
        return [i for i, t in enumerate(self.texts) if t == text]

    def text_of(self, token: int) -> str:
        return self.texts[token]

    def is_unique(self, token: int) -> bool:
        text = self.texts[token]
        return bool(text) and self.texts.count(text) == 1

    def shown(self, token_text: str) -> str:
        """A server's token as text (``token_id:N`` resolved)."""
        ids = self.ids_for(token_text) if token_text.startswith("token_id:") else None
        return self.texts[ids[0]] if ids else token_text


@dataclass(frozen=True)
class ReferenceAnswer:
    """transformers float32's greedy continuation of a prompt (EOS allowed, included)."""

    prompt_ids: list[int]
    tokens: list[int]
    logits: torch.Tensor  # [steps, V], the raw logits each token was chosen from
    ended_with_eos: bool  # the last token is EOS (a server stops there and omits it)

    def text(self, texts: TokenTexts) -> str:
        return "".join(texts.text_of(t) for t in self.tokens)


def reference_continuation(reference: Any, prompt_ids: Sequence[int], n_new: int,
                           eos_ids: Sequence[int]) -> ReferenceAnswer:
    """Greedy decoding by full recompute with the reference engine, stopping after EOS."""
    import torch

    ids = torch.tensor([list(prompt_ids)], dtype=torch.long)
    tokens, logits, eos = [], [], False
    for _ in range(n_new):
        last = reference.forward_logits(ids, torch.ones_like(ids))[0, -1].double()
        token = int(last.argmax())
        tokens.append(token)
        logits.append(last)
        if token in eos_ids:
            eos = True
            break
        ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
    return ReferenceAnswer(list(prompt_ids), tokens, torch.stack(logits), eos)


def _where(what: str, context: Mapping[str, Any]) -> str:
    return f"{what} [{render_context(context)}]" if context else what


def check_same_answer(got: Completion, want: Completion, tolerance: Tolerance, what: str,
                      context: Mapping[str, Any], labels: tuple[str, str] = ("got", "want"),
                      ) -> None:
    """Two answers to one request: same text, finish reason and tokens; log-probabilities
    within `tolerance` (scaled by the logprob's size)."""
    a, b = labels
    if got.text != want.text:
        at = next((i for i, (x, y) in enumerate(zip(got.text, want.text, strict=False)) if x != y),
                  min(len(got.text), len(want.text)))
        raise ConformanceError(_where(
            f"{what}: texts differ at character {at}: {a} {got.text!r}, {b} {want.text!r}",
            context))
    if got.finish_reason != want.finish_reason:
        raise ConformanceError(_where(
            f"{what}: finish_reason {a} {got.finish_reason!r}, {b} {want.finish_reason!r} "
            f"(same text {got.text!r})", context))
    if got.logprobs is None or want.logprobs is None:
        if (got.logprobs is None) != (want.logprobs is None):
            missing = a if got.logprobs is None else b
            raise ConformanceError(_where(f"{what}: logprobs were asked for but the {missing} "
                                          "answer has none", context))
        return
    if got.tokens != want.tokens:
        pairs = zip(got.tokens or [], want.tokens or [], strict=False)
        step = next((i for i, (x, y) in enumerate(pairs) if x != y),
                    min(len(got.logprobs), len(want.logprobs)))
        raise ConformanceError(_where(
            f"{what}: tokens differ at step={step}: {a} has {len(got.logprobs)} tokens "
            f"{got.tokens}, {b} has {len(want.logprobs)} {want.tokens}", context))
    for step, (x, y) in enumerate(zip(got.logprobs, want.logprobs, strict=True)):
        if x.logprob is None or y.logprob is None:
            continue
        diff = abs(x.logprob - y.logprob)
        bound = tolerance.atol + tolerance.rtol * abs(y.logprob)
        if diff > bound:
            raise ConformanceError(_where(
                f"{what}: logprob of token {x.token!r} at step={step} differs by {diff:.3e} "
                f"({a} {x.logprob:.6f}, {b} {y.logprob:.6f}; {tolerance.describe()})", context))


def check_reassembly(streamed: Completion, whole: Completion, what: str,
                     context: Mapping[str, Any]) -> None:
    """A stream's chunks concatenate to the whole answer, with no chunk lost or repeated."""
    chunks = streamed.chunks or []
    joined = "".join(chunks)
    if joined != whole.text:
        raise ConformanceError(_where(
            f"{what}: {len(chunks)} stream chunks {chunks} join to {joined!r}, the whole "
            f"answer is {whole.text!r}", context))
    if streamed.logprobs is not None and whole.logprobs is not None \
            and len(streamed.logprobs) != len(whole.logprobs):
        raise ConformanceError(_where(
            f"{what}: the stream carried {len(streamed.logprobs)} tokens "
            f"{streamed.tokens}, the whole answer {len(whole.logprobs)} {whole.tokens}",
            context))


def check_usage(answer: Completion, n_tokens: int, what: str, context: Mapping[str, Any],
                usage: Mapping[str, int] | None = None) -> None:
    """``usage.completion_tokens`` (the answer's, else `usage`: the same request's
    non-streamed usage, for servers that send none in a stream) equals the number of tokens
    received."""
    usage = answer.usage or usage
    if usage is None:
        raise ConformanceError(_where(f"{what}: the answer reports no usage", context))
    reported = usage.get("completion_tokens")
    if reported != n_tokens:
        raise ConformanceError(_where(
            f"{what}: usage.completion_tokens is {reported}, {n_tokens} tokens were "
            f"received {answer.tokens}", context))


@dataclass(frozen=True)
class ReferenceVerdict:
    steps_compared: int  # tokens identical to the reference's
    diverged_at: int | None  # a near-tie divergence (None: identical throughout)
    max_logprob_diff: float
    logprobs_compared: int


def check_against_reference(answer: Completion, reference: ReferenceAnswer,
                            texts: TokenTexts, tolerance: Tolerance, precision: str,
                            what: str, context: Mapping[str, Any]) -> ReferenceVerdict:
    """A temperature-0 answer (with logprobs) against the reference's greedy continuation.

    Tokens must match until the reference's answer ends, or diverge only at a near-tie (the
    server's token in the reference's top-k and within the tie margin of its argmax). At
    every matching step the log-probabilities of the chosen token and of the reference's
    top-k tokens (those whose text is unambiguous) must stay within the agreement bound of
    the server's precision; quantized precisions are judged by top-1 only (a server's top
    logprobs are too few for the KL gate), by ``check_quantized_top1``."""
    if answer.logprobs is None:
        raise ConformanceError(_where(f"{what}: logprobs were asked for, the answer has none",
                                      context))
    quantized = precision in QUANTIZED_GATES
    worst, compared = 0.0, 0
    for step, item in enumerate(answer.logprobs):
        if step >= len(reference.tokens):
            ended = "with EOS" if reference.ended_with_eos else "at its length"
            raise ConformanceError(_where(
                f"{what}: the reference ended {ended} after {len(reference.tokens)} tokens, "
                f"the server went on: step={step} token {item.token!r} "
                f"(finish_reason {answer.finish_reason!r})", context))
        logits = reference.logits[step]
        want = reference.tokens[step]
        logprobs = logits.log_softmax(-1)
        max_abs = float(logits.abs().max())
        bound = logprob_bound(tolerance, max_abs)
        got_text = texts.shown(item.token)
        if got_text != texts.text_of(want):
            candidates = texts.ids_for(item.token)
            top = logits.topk(min(TOP_K, logits.shape[-1])).indices.tolist()
            near = [c for c in candidates if c in top
                    and float(logits[want] - logits[c]) <= bound]
            if near or quantized:
                return ReferenceVerdict(step, step, worst, compared)
            margins = {c: float(logits[want] - logits[c]) for c in candidates}
            raise ConformanceError(_where(
                f"{what}: token at step={step} is {item.token!r}, the reference's is "
                f"{want} {texts.text_of(want)!r} (logprob {float(logprobs[want]):.4f}); the "
                f"server's token is id(s) {candidates} with reference logit margin(s) "
                f"{ {c: round(m, 4) for c, m in margins.items()} } (tie margin {bound:.3e}), "
                f"top-{TOP_K} {top}; server text {answer.text!r}, reference "
                f"{reference.text(texts)!r}", context))
        if quantized:
            continue
        pairs = [(want, item.logprob)] + [
            (int(t), item.top.get(texts.text_of(int(t))))
            for t in logprobs.topk(min(TOP_K, logprobs.shape[-1])).indices
            if texts.is_unique(int(t))]
        for token, value in pairs:
            if value is None:
                continue
            diff = abs(float(value) - float(logprobs[token]))
            compared += 1
            worst = max(worst, diff)
            if diff > bound:
                raise ConformanceError(_where(
                    f"{what}: logprob of token {token} {texts.text_of(token)!r} at step={step} "
                    f"is {float(value):.6f}, the reference's {float(logprobs[token]):.6f}: "
                    f"|Δ| {diff:.3e} > bound {bound:.3e} ({precision}: 2 x logits tolerance "
                    f"{tolerance.describe()}, max|logit| {max_abs:.2f})", context))
    expected = len(reference.tokens) - int(reference.ended_with_eos)
    if len(answer.logprobs) < expected:  # the request's max_tokens is the reference's length
        raise ConformanceError(_where(
            f"{what}: the server stopped after {len(answer.logprobs)} tokens "
            f"(finish_reason {answer.finish_reason!r}), the reference generates {expected}"
            f"{' before EOS' if reference.ended_with_eos else ''}: "
            f"{reference.text(texts)!r} vs {answer.text!r}", context))
    return ReferenceVerdict(len(answer.logprobs), None, worst, compared)


def check_answers_prompt(answer: Completion, prompt_ids: Sequence[int],
                         reference: ReferenceAnswer | None, texts: TokenTexts | None,
                         tolerance: Tolerance, what: str, context: Mapping[str, Any]) -> None:
    """The answer belongs to this prompt: ``usage.prompt_tokens`` is the prompt's length
    and, with the reference, the first token's log-probability is the one the reference
    gives that token after this prompt (an answer computed from another prompt's cached
    state, or handed over from another request, has other numbers)."""
    counted = (answer.usage or {}).get("prompt_tokens")
    if counted is not None and counted != len(prompt_ids):
        raise ConformanceError(_where(
            f"{what}: usage.prompt_tokens is {counted}, the prompt has {len(prompt_ids)} "
            f"tokens: the answer {answer.text!r} is another prompt's", context))
    if reference is None or texts is None or not answer.logprobs:
        return
    first = answer.logprobs[0]
    logits = reference.logits[0]
    logprobs = logits.log_softmax(-1)
    bound = logprob_bound(tolerance, float(logits.abs().max()))
    candidates = texts.ids_for(first.token)
    if first.logprob is None or not candidates:
        raise ConformanceError(_where(f"{what}: the first token {first.token!r} is no token "
                                      "of the model or has no logprob", context))
    diffs = {c: abs(float(first.logprob) - float(logprobs[c])) for c in candidates}
    token, diff = min(diffs.items(), key=lambda item: item[1])
    if diff > bound:
        raise ConformanceError(_where(
            f"{what}: the first token {first.token!r} has logprob {first.logprob:.6f}; after "
            f"this prompt the reference gives it {float(logprobs[token]):.6f} (id {token}): "
            f"|Δ| {diff:.3e} > bound {bound:.3e}, the answer was computed from another "
            "prompt's state", context))


def check_quantized_top1(first_tokens: Sequence[tuple[str, int]], texts: TokenTexts,
                         precision: str, what: str, context: Mapping[str, Any]) -> float:
    """Quantized servers: the share of first tokens equal to the reference's argmax must
    reach the precision's top-1 gate (QUANTIZED_GATES)."""
    same = sum(texts.shown(got) == texts.text_of(want) for got, want in first_tokens)
    share = same / len(first_tokens)
    gate = QUANTIZED_GATES[precision][1]
    if share < gate:
        raise ConformanceError(_where(
            f"{what}: first tokens equal to the reference's argmax in {same}/"
            f"{len(first_tokens)} prompts ({share:.0%}); the {precision} gate is {gate:.0%}",
            context))
    return share


def group_by_text(probs: np.ndarray, texts: TokenTexts) -> tuple[list[str], np.ndarray]:
    """Probabilities summed over tokens that a server shows with the same text, so a
    sampled text names one category."""
    order: dict[str, int] = {}
    grouped: list[float] = []
    for token, p in enumerate(probs):
        text = texts.text_of(token)
        if text not in order:
            order[text] = len(grouped)
            grouped.append(0.0)
        grouped[order[text]] += float(p)
    return list(order), np.asarray(grouped, dtype=np.float64)
