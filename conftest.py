"""Repository-level pytest setup: keep every run offline and single-sourced."""

import os

# Nothing in this project downloads weights: make any attempt fail loudly.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
