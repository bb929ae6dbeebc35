"""Category C: the broker's own slim store of files and records, and what it serves to the world."""
