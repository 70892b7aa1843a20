# The README's commands. `make test` and `make bench` each set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# On a host with an NVIDIA driver, reuse the image's CUDA torch; elsewhere
# install the CPU build (a bare `torch` pulls several GB of CUDA packages).
HAS_CUDA := $(shell command -v nvidia-smi >/dev/null 2>&1 && echo yes)
VENV_FLAGS := $(if $(HAS_CUDA),--system-site-packages,)
TORCH_CPU := torch==2.13.0

.PHONY: install test test-plugin test-suite bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(if $(HAS_CUDA),,$(BIN)/python -m pip install -q $(TORCH_CPU))
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/pytest tests suite -m "not gpu and not slow and not perf" -p no:cacheprovider

# The perf suite on the embedded default, then this run against the committed
# baseline of this device (shown, not gated: `--infer-baseline` gates).
bench: $(STAMP)
	rm -rf reports/latest
	$(BIN)/pytest suite -m "perf and not gpu and not slow" -p no:cacheprovider \
		--infer-report-dir reports/latest $(BENCH_ARGS)
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

lint: $(STAMP)
	$(BIN)/python -m pip install -q -e ".[lint]"
	$(BIN)/ruff check src tests suite scripts
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks
