"""Targets domain."""
