"""Benchmarks: scripts that print ratios against a baseline measured side by side."""
