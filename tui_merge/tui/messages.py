"""Messages that worker threads post to screens: workers never touch widgets themselves."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from tui_merge.compatibility.findings import CompatibilityReport
from tui_merge.engine.events import MergeEvent
from tui_merge.models.changes import ChangeReport
from tui_merge.models.info import ModelInfo


@dataclass
class ModelInspected(Message):
    """A model was added and inspected."""

    argument: str
    info: ModelInfo


@dataclass
class InspectFailed(Message):
    """A model could not be inspected; ``message`` says why."""

    argument: str
    message: str


@dataclass
class CacheListed(Message):
    """The models of the local Hugging Face cache: (repo id, a line about it), most recently used first."""

    entries: list[tuple[str, str]]


@dataclass
class DevicesListed(Message):
    """The devices a merge can run on, as the Output step's choices (label, value), CUDA devices with free memory."""

    choices: list[tuple[str, str]]


@dataclass
class WorkFailed(Message):
    """A background step failed with a message for the user."""

    message: str


@dataclass
class ReportReady(Message):
    """The compatibility report (lineage included) is computed."""

    report: CompatibilityReport


@dataclass
class PlanReady(Message):
    """The review step's plan summary is computed."""

    lines: list[str]
    leftover: str | None = None
    """What another merge left at the output (``review.leftover_merge``), judged against this plan."""
    resumable: bool | None = None
    """Whether the interrupted merge there is this plan's, so the Run step can resume it."""


@dataclass
class EngineEvent(Message):
    """One event from the executor, carried to the run screen."""

    event: MergeEvent

    def can_replace(self, message: Message) -> bool:
        """A newer progress event makes a queued older one redundant."""
        replace = getattr(self.event, "can_replace", None)
        return isinstance(message, EngineEvent) and bool(replace and replace(message.event))


@dataclass
class InsightProgress(Message):
    """Bytes read so far measuring what each model changed; ``problem`` when it could not be measured."""

    done: int
    total: int
    problem: str | None = None

    def can_replace(self, message: Message) -> bool:
        """A newer report makes this queued count redundant (Textual drops this one and shows ``message``)."""
        return isinstance(message, InsightProgress) and self.problem is None


@dataclass
class InsightReady(Message):
    """What each model changed, per layer and component."""

    report: ChangeReport
