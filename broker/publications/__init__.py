"""Publications domain."""
