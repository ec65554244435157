"""Data: the corpus, its scoring, the tokenizer and packing into training blocks."""
