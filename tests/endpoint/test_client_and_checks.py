"""The HTTP client's parsing and the endpoint comparisons, on hand-made answers: each check
fails on the difference it is for and passes on equal answers."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from infersuite.conformance.compare import ConformanceError
from infersuite.conformance.endpoint import (
    ReferenceAnswer,
    TokenTexts,
    check_against_reference,
    check_reassembly,
    check_same_answer,
    check_usage,
    group_by_text,
)
from infersuite.conformance.tolerances import LOGITS_TOLERANCES
from infersuite.serving.client import (
    Completion,
    OpenAIClient,
    TokenLogprob,
    assemble_stream,
    parse_answer,
)

F32 = LOGITS_TOLERANCES["float32"]


def _answer(tokens, logprobs=None, finish="length", usage=None):
    logprobs = logprobs or [-1.0] * len(tokens)
    return Completion("".join(tokens), finish, usage,
                      [TokenLogprob(t, lp) for t, lp in zip(tokens, logprobs, strict=True)])


def test_completions_and_chat_logprobs_normalize_to_one_shape():
    completions = {"choices": [{"index": 0, "text": "ab", "finish_reason": "length",
                                "logprobs": {"tokens": ["a", "b"], "token_logprobs": [-1, -2],
                                             "top_logprobs": [{"a": -1}, {"b": -2, "c": -3}]}}],
                   "usage": {"completion_tokens": 2}}
    chat = {"choices": [{"index": 0, "message": {"content": "ab"}, "finish_reason": "length",
                         "logprobs": {"content": [
                             {"token": "a", "logprob": -1, "top_logprobs": [
                                 {"token": "a", "logprob": -1}]},
                             {"token": "b", "logprob": -2, "top_logprobs": [
                                 {"token": "b", "logprob": -2}, {"token": "c", "logprob": -3}]}]}}]}
    one, two = parse_answer(completions, "c")[0], parse_answer(chat, "c")[0]
    assert one.tokens == two.tokens == ["a", "b"]
    assert one.logprobs[1].top == two.logprobs[1].top == {"b": -2, "c": -3}
    assert one.text == two.text == "ab"


def test_stream_assembles_chunks_usage_and_finish_reason():
    events = [{"choices": [{"index": 0, "text": "a", "logprobs": {"tokens": ["a"],
                                                                  "token_logprobs": [-1]}}]},
              {"choices": [{"index": 0, "text": "", "logprobs": {"tokens": [""],
                                                                 "token_logprobs": [-2]}}]},
              {"choices": [{"index": 0, "text": "bc", "finish_reason": "stop",
                            "logprobs": {"tokens": ["bc"], "token_logprobs": [-3]}}]},
              {"choices": [], "usage": {"completion_tokens": 3}}]
    streamed = assemble_stream(events, "s")[0]
    assert (streamed.text, streamed.chunks, streamed.finish_reason) == ("abc", ["a", "bc"],
                                                                        "stop")
    assert streamed.tokens == ["a", "", "bc"]
    assert streamed.usage == {"completion_tokens": 3}


def test_same_answer_says_where_answers_differ():
    base = _answer(["x", "y", "z"], [-1.0, -2.0, -3.0])
    check_same_answer(_answer(["x", "y", "z"], [-1.0, -2.0, -3.0 + 1e-6]), base, F32, "w", {})
    with pytest.raises(ConformanceError, match="texts differ at character 1"):
        check_same_answer(_answer(["x", "q", "z"]), base, F32, "w", {})
    with pytest.raises(ConformanceError, match=r"logprob of token 'z' at step=2 differs by "
                                               r"1\.000e-02"):
        check_same_answer(_answer(["x", "y", "z"], [-1.0, -2.0, -2.99]), base, F32, "w", {})
    with pytest.raises(ConformanceError, match="finish_reason"):
        check_same_answer(_answer(["x", "y", "z"], [-1.0, -2.0, -3.0], "stop"), base, F32,
                          "w", {})


def test_reassembly_and_usage_catch_lost_and_extra_tokens():
    whole = _answer(["a", "b", "c"], usage={"completion_tokens": 3})
    streamed = _answer(["a", "b", "c"])
    streamed.chunks = ["a", "b", "c"]
    check_reassembly(streamed, whole, "s", {})
    streamed.chunks = ["a", "c"]
    with pytest.raises(ConformanceError, match="2 stream chunks"):
        check_reassembly(streamed, whole, "s", {})
    check_usage(whole, 3, "u", {})
    with pytest.raises(ConformanceError, match=r"usage\.completion_tokens is 3, 2 tokens"):
        check_usage(whole, 2, "u", {})
    with pytest.raises(ConformanceError, match="reports no usage"):
        check_usage(streamed, 3, "u", {})


def _reference():
    # vocabulary: 0 "", 1 "a", 2 "b", 3 "c", 4 "b" (a second id for "b")
    texts = TokenTexts(("", "a", "b", "c", "b"))
    logits = torch.tensor([[0.0, 5.0, 1.0, 0.5, -1.0], [0.0, 1.0, 5.0, 4.99999, -1.0]],
                          dtype=torch.float64)
    return texts, ReferenceAnswer([9], [1, 2], logits, False)


def test_against_reference_accepts_its_own_numbers_and_a_near_tie():
    texts, reference = _reference()
    logprobs = reference.logits.log_softmax(-1)
    exact = _answer(["a", "b"], [float(logprobs[0, 1]), float(logprobs[1, 2])])
    assert check_against_reference(exact, reference, texts, F32, "float32", "r", {}) \
        .diverged_at is None
    tie = _answer(["a", "c"], [float(logprobs[0, 1]), float(logprobs[1, 3])])
    assert check_against_reference(tie, reference, texts, F32, "float32", "r", {}) \
        .diverged_at == 1


def test_against_reference_fails_on_a_wrong_token_or_logprob():
    texts, reference = _reference()
    logprobs = reference.logits.log_softmax(-1)
    with pytest.raises(ConformanceError, match=r"token at step=0 is 'c'"):
        check_against_reference(_answer(["c", "b"]), reference, texts, F32, "float32", "r", {})
    off = _answer(["a", "b"], [float(logprobs[0, 1]) + 1e-3, float(logprobs[1, 2])])
    with pytest.raises(ConformanceError, match=r"logprob of token 1 'a' at step=0"):
        check_against_reference(off, reference, texts, F32, "float32", "r", {})


def test_tokens_sharing_a_text_are_one_category():
    texts, _ = _reference()
    labels, probs = group_by_text(torch.tensor([0.1, 0.2, 0.3, 0.15, 0.25]).numpy(), texts)
    assert dict(zip(labels, probs.round(6).tolist(), strict=True)) == {
        "": 0.1, "a": 0.2, "b": 0.55, "c": 0.15}
    assert texts.ids_for("b") == [2, 4]
    assert texts.ids_for("token_id:3") == [3]
    assert not texts.is_unique(2)
    assert texts.is_unique(3)


def test_api_key_is_sent_and_never_shown(monkeypatch):
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            seen.append(self.headers.get("authorization"))
            body = json.dumps({"data": [{"id": "m"}]}).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("INFERSUITE_TEST_KEY", "sk-secret-123")
    try:
        client = OpenAIClient(f"http://127.0.0.1:{server.server_address[1]}",
                              api_key_env="INFERSUITE_TEST_KEY")
        assert client.model == "m"
        assert seen == ["Bearer sk-secret-123"]
        assert "sk-secret" not in repr(client)
        assert "sk-secret" not in str(vars(client))
        client.close()
    finally:
        server.shutdown()
        server.server_close()


def test_server_phases_from_prometheus_histograms():
    from infersuite.serving.server_metrics import compute_phase_means, scrape_phases

    def exposition(prefill_sum, decode_sum, count):
        return "\n".join([
            "# TYPE vllm:request_prefill_time_seconds histogram",
            f'vllm:request_prefill_time_seconds_bucket{{le="+Inf"}} {count}',
            f"vllm:request_prefill_time_seconds_sum {prefill_sum}",
            f"vllm:request_prefill_time_seconds_count {count}",
            "# TYPE vllm:request_decode_time_seconds histogram",
            f'vllm:request_decode_time_seconds_bucket{{le="+Inf"}} {count}',
            f"vllm:request_decode_time_seconds_sum {decode_sum}",
            f"vllm:request_decode_time_seconds_count {count}", ""])

    class Client:
        def __init__(self, text, status=200):
            self.text, self.status = text, status

        def get(self, path):
            return type("R", (), {"status_code": self.status, "text": self.text})()

    before = scrape_phases(Client(exposition(1.0, 4.0, 10)))
    after = scrape_phases(Client(exposition(1.5, 6.0, 20)))
    assert compute_phase_means(before, after) == pytest.approx({"prefill_s": 0.05,
                                                                "decode_s": 0.2})
    assert scrape_phases(Client("", status=404)) is None
    assert scrape_phases(Client('{"not": "prometheus"}')) is None


def test_a_planted_slowdown_on_a_server_is_a_second_client_of_the_same_server():
    """``slowdown=F`` on a server engine: the same process behind another client whose load
    runs stretch their times; closing it leaves the server running for A."""
    from infersuite.engines.base import EngineSpec
    from infersuite.engines.openai_engine import OpenAIEngine
    from infersuite.serving.stub import StubServer, StubTiming

    class Server:
        stopped = 0

        def stop(self):
            Server.stopped += 1

    stub = StubServer(StubTiming(ttft_s=0.001, itl_s=0.001)).start()
    try:
        client = OpenAIClient(stub.url)
        engine = OpenAIEngine(EngineSpec("openai"), client, Server(), {"server": "stub"},
                              vocab_size=8, pad_id=0, eos_ids=[1], tokenizer=None,
                              precision="float32", reference_known=False, n_ctx=None)
        spec = EngineSpec("openai", (("slowdown", "0.05"),))
        twin = engine.with_planted_slowdown(spec, 0.05)
        assert (twin.spec, twin.client.slowdown, client.slowdown) == (spec, 0.05, 0.0)
        assert twin.client is not client
        assert (twin.client.base_url, twin.client.model) == (client.base_url, client.model)
        assert twin.info["planted_slowdown"] == "0.05"
        twin.close()
        assert Server.stopped == 0
        engine.close()
        assert Server.stopped == 1
    finally:
        stub.stop()
