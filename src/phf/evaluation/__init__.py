"""Evaluation: misalignment of samples and held-out loss (`phf evaluate`)."""
