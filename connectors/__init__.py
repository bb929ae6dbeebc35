"""Framework-free clients of the external systems the broker delivers to (never imports ``broker``)."""
