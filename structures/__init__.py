"""Glass compositions and initial glass models (viglas.structures)."""
