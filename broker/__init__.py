"""The publication broker: publish once, classify A/B/C, route to the national platforms or the regional store."""

__version__ = "0.1.0"
