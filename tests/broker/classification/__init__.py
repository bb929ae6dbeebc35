"""Tests of the needs catalogue and the classification engine."""
