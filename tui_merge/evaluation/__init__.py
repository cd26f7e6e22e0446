"""Evaluation where the merge is made: perplexity on a text, greedy continuations, parameter sweeps."""
