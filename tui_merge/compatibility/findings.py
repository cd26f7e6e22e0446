"""A finding about a set of models, the fixes it offers, and the report that holds them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from tui_merge.models.info import ModelInfo

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")

EXAMPLES = 3
"""How many tensor names a finding lists as examples."""


@dataclass(frozen=True)
class Fix:
    """One way to resolve a finding."""

    key: str
    """The value a config uses to choose this fix, e.g. ``pad``."""
    summary: str
    """What choosing it would do to these models."""


@dataclass(frozen=True)
class Finding:
    """One thing the user should know before merging."""

    code: str
    """Stable identifier, e.g. ``vocab_size`` or ``lineage``."""
    severity: Severity
    message: str
    models: tuple[str, ...] = ()
    """Labels of the models concerned."""
    fixes: tuple[Fix, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "models": list(self.models),
            "fixes": [{"key": fix.key, "summary": fix.summary} for fix in self.fixes],
        }


@dataclass(frozen=True)
class CompatibilityReport:
    """The findings about one set of models."""

    models: list[ModelInfo]
    base: ModelInfo
    findings: list[Finding] = field(default_factory=list)

    @property
    def mergeable(self) -> bool:
        """True when no finding is an error."""
        return not any(finding.severity == "error" for finding in self.findings)


PairCheck = Callable[[ModelInfo, list[ModelInfo], "str | None"], list[Finding]]
"""A family's check of the other models against the base, for a merge by a method (or none chosen yet)."""


def differing(base: ModelInfo, others: list[ModelInfo], value: Callable[[ModelInfo], Any]) -> list[ModelInfo]:
    """The models whose ``value`` differs from the base's."""
    return [model for model in others if value(model) != value(base)]


def listing(base: ModelInfo, models: list[ModelInfo], value: Callable[[ModelInfo], Any]) -> str:
    """``label: value`` for the base and ``models``, for a sentence."""
    return ", ".join(f"{model.label}: {value(model)}" for model in [base, *models])
