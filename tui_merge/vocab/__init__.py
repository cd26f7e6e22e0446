"""Vocabularies that differ between models: tokenizers, row alignment by token, and the output tokenizer."""
