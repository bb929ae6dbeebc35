"""Metadata: the publication as the platforms receive it (ISO 19139, DCAT)."""
