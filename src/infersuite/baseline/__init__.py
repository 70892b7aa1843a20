"""Baselines: the device fingerprint, the versioned baseline file (atomic I/O), the gate."""
