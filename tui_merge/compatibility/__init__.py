"""Can these models be merged? Findings computed from headers and one probe tensor, in seconds.

Each finding has a severity: ``error`` blocks the merge (the result would be
wrong or cannot be built), ``warning`` needs a decision or deserves a look,
``info`` is worth knowing. Warnings that have remedies list them as fixes,
which the wizard offers as choices and a config selects by key.

Every model is compared with the base: the one marked as base, else the first. ``check`` assembles the
report from one module per family of findings: ``each_model`` (a model on its own), ``shapes`` (whether the
tensors can be combined at all), ``vocabulary`` (rows and tokens) and ``lineage`` (whether the models share a
base and a pretraining generation).
"""
