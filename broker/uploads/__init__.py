"""Resumable uploads (tus 1.0): big files sent in parts, resumed after a cut, then cited by a manifest."""
