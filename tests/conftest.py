"""Shared fixtures live in tests/fixtures/ as plugins, one module per kind of real server or helper."""

pytest_plugins = [
    "tests.fixtures.servers",
    "tests.fixtures.oidc",
]
