"""Intake: receive files, store them content-addressed, describe them before anything is pushed."""
