"""Evaluation where the merge is made: loading a model to run it, perplexity on a text, greedy continuations."""
