"""Benchmarks (issue 6). Each prints its figures with a baseline measured in the same run;
`python -m bench` (`make bench`) runs them all and rewrites the tables in BENCHMARKS.md.
`bench/detectors.py` (issue 3) is a separate script: `python bench/detectors.py`."""
