"""Conformance checks as plain functions: compare tensors, run reference loops."""
