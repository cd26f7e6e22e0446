"""Merge methods: a registry of specs (``registry``) and one pure kernel module per family."""
