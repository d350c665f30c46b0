"""Benchmarks run by `make bench`; each writes JSON results."""
