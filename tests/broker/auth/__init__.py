"""Tests of identity and access (broker.auth)."""
