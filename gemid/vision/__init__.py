"""Pixels to findings: decode, segment, measure, classify, report. Never imports torch."""
