"""Benchmarks: every figure next to an anchor measured in the same run."""
