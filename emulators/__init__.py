"""Faithful local emulators of the national APIs (data.gouv.fr, Géoplateforme); import nothing from broker."""
