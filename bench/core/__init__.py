"""Lowest layer: errors, paths, seeds, typed config helpers, provenance and device choice."""
