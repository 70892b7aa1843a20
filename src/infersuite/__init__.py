"""infersuite: conformance and benchmark suite for AI model inference."""

__version__ = "0.1.0"
