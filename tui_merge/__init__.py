"""tui-merge: merge the weights of fine-tuned language models from a terminal."""

__version__ = "0.1.0"
