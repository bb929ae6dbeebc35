"""A faithful local emulator of the Géoplateforme Entrepôt API and of its Keycloak token endpoint.

See ``shared/research/geoplateforme-api.md`` for the behaviour it reproduces; ``admin`` documents the
emulator-only routes under ``/_emulator/``. It imports nothing from ``broker``.
"""

from emulators.geoplateforme.app import create_app, run

__all__ = ["create_app", "run"]
