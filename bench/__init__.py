"""Benchmarks of switchyard: `python bench/run.py` (make bench), docs/BENCHMARKS.md."""
