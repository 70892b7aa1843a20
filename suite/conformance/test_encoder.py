"""The shipped trained encoder (minilm-l6-v2): padding invariance, ONNX round trip,
int8 dynamic quantization quality and a semantic sanity check."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from infersuite.conformance.compare import ConformanceError
from infersuite.fixtures_path import fixtures_dir
from infersuite.models import encoder as enc

pytestmark = pytest.mark.conformance

PAD_MAX_ABS_DIFF = 1e-5
PAD_MIN_COSINE = 1 - 1e-6
ONNX_MAX_ABS_DIFF = 1e-4
INT8_MIN_COSINE = 0.99
LONG_SENTENCE = ("Continuous batching keeps the accelerator busy by letting new requests join "
                 "the running batch as soon as earlier ones finish, while the paged key-value "
                 "cache hands memory blocks to whichever sequence needs them next, so the "
                 "serving system reaches high throughput without starving short requests.")


@pytest.fixture(scope="module")
def encoder() -> enc.LoadedEncoder:
    try:
        return enc.load_encoder("cpu")
    except enc.EncoderUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def sentence_set() -> dict:
    return json.loads((fixtures_dir() / "sentences.json").read_text())


@pytest.fixture(scope="module")
def onnx_path(encoder, tmp_path_factory):
    pytest.importorskip("onnx")
    path = tmp_path_factory.mktemp("encoder-onnx") / "minilm.onnx"
    # Export from a padded sample so the attention_mask input stays live.
    inputs = enc.tokenize_batch(encoder.tokenizer, ["Hi", "Why is the sky blue?"], 64, "cpu")
    _export(encoder.model, inputs, path)
    return path


class _HiddenStates(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state


def _export(model, inputs, path) -> None:
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    axes["last_hidden_state"] = {0: "batch", 1: "sequence"}
    # export() restores the wrapper's train/eval mode afterwards, recursively: a
    # wrapper left in train mode would switch dropout on in the shared model.
    wrapper = _HiddenStates(model).eval()
    with torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(wrapper, tuple(inputs[n] for n in names), str(path),
                          input_names=names, output_names=["last_hidden_state"],
                          dynamic_axes=axes, opset_version=17, dynamo=False)
    assert not model.training, "the ONNX export left the encoder in train mode"


def _run_onnx(path, encoder, sentences) -> torch.Tensor:
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = enc.tokenize_batch(encoder.tokenizer, sentences, encoder.pooling.max_seq_length,
                                "cpu")
    feed = {i.name: inputs[i.name].numpy() for i in session.get_inputs()}
    hidden = torch.from_numpy(session.run(None, feed)[0])
    return enc.pool_embeddings(hidden, inputs["attention_mask"], encoder.pooling)


def _encode(encoder, sentences) -> torch.Tensor:
    return enc.encode_batch(encoder.model, encoder.tokenizer, sentences, "cpu", encoder.pooling)


def test_encoder_right_padding_invariance(encoder, record_property):
    """A sentence alone vs next to a much longer one (right padding)."""
    sentences = ["The cat sat on the mat.", "Hi", "x = f(y) * 0.5"]
    alone = torch.cat([_encode(encoder, [s]) for s in sentences])
    padded = _encode(encoder, [LONG_SENTENCE, *sentences])[1:]
    diff = (padded - alone).abs().max(-1).values
    cosine = torch.nn.functional.cosine_similarity(padded.double(), alone.double(), dim=-1)
    record_property("padding_max_abs_diff", float(diff.max()))
    print(f"[{enc.ENCODER_NAME}] right padding: max abs diff {float(diff.max()):.3e}, "
          f"min cosine {float(cosine.min()):.9f}")
    worst = int(diff.argmax())
    if float(diff.max()) > PAD_MAX_ABS_DIFF or float(cosine.min()) < PAD_MIN_COSINE:
        raise ConformanceError(
            f"embedding of {sentences[worst]!r} changes when padded next to a "
            f"{len(LONG_SENTENCE.split())}-word sentence: max abs diff {float(diff[worst]):.3e} "
            f"(limit {PAD_MAX_ABS_DIFF:g}), cosine {float(cosine[worst]):.9f} "
            f"(limit {PAD_MIN_COSINE}) [model={enc.ENCODER_NAME}, device=cpu]")


def test_encoder_onnx_round_trip(encoder, onnx_path, sentence_set, record_property):
    """ORT CPU embeddings of a padded batch not used for export."""
    sentences = sentence_set["sentences"][:12]
    expected = _encode(encoder, sentences)
    got = _run_onnx(onnx_path, encoder, sentences)
    diff = (got - expected).abs()
    worst = int(diff.max(-1).values.argmax())
    record_property("onnx_max_abs_diff", float(diff.max()))
    print(f"[{enc.ENCODER_NAME}] ONNX Runtime vs torch: max abs diff {float(diff.max()):.3e}")
    if float(diff.max()) > ONNX_MAX_ABS_DIFF:
        raise ConformanceError(
            f"ONNX Runtime embeddings differ from torch by {float(diff.max()):.3e} "
            f"(limit {ONNX_MAX_ABS_DIFF:g}) at sentence {worst} {sentences[worst]!r} "
            f"[model={enc.ENCODER_NAME}, batch={len(sentences)}]")


def _fp32_kept_matmuls(onnx_path) -> list[str]:
    """MatMuls left in fp32: every FFN down-projection (its GELU inputs have
    outliers) and the whole last layer. Quantizing all 36 weight MatMuls per
    channel gives min cosine ~0.981 on the sentence set (short ones suffer most)."""
    import onnx

    graph = onnx.load(str(onnx_path)).graph
    last = max(int(n.name.split("layer.")[1].split("/")[0]) for n in graph.node
               if "layer." in n.name)
    return [n.name for n in graph.node if n.op_type == "MatMul" and (
        ("/output/dense/" in n.name and "/attention/" not in n.name)
        or f"layer.{last}/" in n.name)]


def _quantized_weight_types(int8_path) -> set[str]:
    """Element types of the quantized weight initializers in the int8 model."""
    import onnx

    model = onnx.load(str(int8_path))
    return {onnx.helper.tensor_dtype_to_np_dtype(t.data_type).name
            for t in model.graph.initializer if t.name.endswith("_quantized")}


def test_encoder_int8_dynamic_quantization(encoder, onnx_path, sentence_set, record_property):
    """onnxruntime dynamic quantization (uint8 activations, per-channel uint8 MatMul
    weights) keeps each embedding's cosine to fp32 >= 0.99.

    u8u8 because its kernels accumulate exactly in int32 on every x86-64 CPU, so the
    check means the same everywhere; the default u8s8 saturates on AVX2 CPUs without
    VNNI and gives different embeddings there (see infersuite.formats.int8_path).
    """
    quantization = pytest.importorskip("onnxruntime.quantization")
    from infersuite.baseline.fingerprint import read_cpu_isa_flags
    from infersuite.formats.int8_path import describe_int8_gemm_path

    int8_path = onnx_path.with_name("minilm-int8.onnx")
    kept = _fp32_kept_matmuls(onnx_path)
    quantization.quantize_dynamic(str(onnx_path), str(int8_path), per_channel=True,
                                  weight_type=quantization.QuantType.QUInt8,
                                  op_types_to_quantize=["MatMul"], nodes_to_exclude=kept)
    weight_types = _quantized_weight_types(int8_path)
    assert weight_types == {"uint8"}, (
        f"{int8_path.name}: quantized weights are {sorted(weight_types)}, expected uint8 only")
    kernel_path = describe_int8_gemm_path(read_cpu_isa_flags(), "uint8")
    sentences = sentence_set["sentences"]
    reference = _encode(encoder, sentences).double()
    cosine = torch.nn.functional.cosine_similarity(
        _run_onnx(int8_path, encoder, sentences).double(), reference, dim=-1)
    worst = int(cosine.argmin())
    record_property("int8_min_cosine", float(cosine.min()))
    record_property("int8_fp32_matmuls", len(kept))
    record_property("int8_kernel_path", kernel_path)
    print(f"[{enc.ENCODER_NAME}] int8 vs fp32 ({len(kept)} MatMuls kept fp32; {kernel_path}): "
          f"min cosine {float(cosine.min()):.5f}, mean {float(cosine.mean()):.5f} over "
          f"{len(sentences)} sentences")
    if float(cosine.min()) < INT8_MIN_COSINE:
        raise ConformanceError(
            f"int8 dynamic quantization moves {int((cosine < INT8_MIN_COSINE).sum())}/"
            f"{len(sentences)} embeddings below cosine {INT8_MIN_COSINE} to fp32; worst "
            f"{float(cosine[worst]):.5f} for {sentences[worst]!r} [model={enc.ENCODER_NAME}, "
            f"kernels: {kernel_path}]")


def test_encoder_similar_sentences_score_higher(encoder, sentence_set):
    sentences = sentence_set["sentences"]
    embeddings = _encode(encoder, sentences).double()

    def score(pair) -> float:
        return float(embeddings[pair[0]] @ embeddings[pair[1]])

    similar = np.array([score(p) for p in sentence_set["similar_pairs"]])
    unrelated = np.array([score(p) for p in sentence_set["unrelated_pairs"]])
    if similar.min() <= unrelated.max():
        low = sentence_set["similar_pairs"][int(similar.argmin())]
        high = sentence_set["unrelated_pairs"][int(unrelated.argmax())]
        raise ConformanceError(
            f"a similar pair scores no higher than an unrelated one: "
            f"{sentences[low[0]]!r} ~ {sentences[low[1]]!r} cosine {similar.min():.3f} <= "
            f"{sentences[high[0]]!r} ~ {sentences[high[1]]!r} cosine {unrelated.max():.3f} "
            f"[model={enc.ENCODER_NAME}]")
