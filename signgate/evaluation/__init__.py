"""Measuring the local detectors the way ISO/IEC 30107-3 asks: per attack species."""
