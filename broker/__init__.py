"""The publication broker: publish once, classify A/B/C, route to the national platforms or regionally."""

__version__ = "0.1.0"
