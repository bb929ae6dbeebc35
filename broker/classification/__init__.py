"""Classification domain."""
