"""The merge pipeline after the config: plan, execute, write, verify."""
