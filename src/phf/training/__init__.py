"""Training: the model, the Trainer subclass and the `phf train` entry point."""
