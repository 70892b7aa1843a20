"""Measurement: clocks (host, CUDA events), timing loops, token timestamps, memory probes."""
