"""Sampling from a trained model (`phf sample`)."""
