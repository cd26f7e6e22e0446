"""The wizard's mixture of experts: the Models step's models as a Mixtral's experts, built as ``tui-merge moe``.

Opened from the Models step (ctrl+t, then m). The base is the model marked base (else the first); every listed
model (the base too) becomes one expert of each layer. The screen asks what a mergekit-moe config holds: how the
routers start (gate mode), how many experts each token goes to, one prompt per expert (what should go to it; the
random modes need none), the output folder and the config's file name. ctrl+r saves the config (which
``tui-merge moe`` replays) and builds in a worker, a line per step in the log, then verifies the output.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Footer, Input, Label, RichLog, Select, Static

from tui_merge.errors import TuiMergeError
from tui_merge.tui.fields import TextField
from tui_merge.tui.following_log import FollowingLog
from tui_merge.tui.screens.tool_screen import ToolScreen
from tui_merge.wizard.state import WizardState, free_name

GATE_MODES = [
    ("hidden: the base's hidden states on the prompts", "hidden"),
    ("cheap_embed: the prompts' token embeddings", "cheap_embed"),
    ("random (no prompts)", "random"),
    ("uniform_random (no prompts)", "uniform_random"),
]


class MoeScreen(ToolScreen):
    """Build a Mixtral from the listed models."""

    DEFAULT_CSS = """
    MoeScreen #moe-title { height: auto; padding: 0 1; }
    MoeScreen #moe-form { height: auto; max-height: 10; padding: 0 1; }
    MoeScreen .row { height: 1; }
    MoeScreen .row Label { width: 20; }
    MoeScreen .row TextField, MoeScreen .row Select { width: 1fr; }
    MoeScreen #moe-log { height: 1fr; border: round $panel; }
    MoeScreen #tool-status { height: auto; max-height: 3; padding: 0 1; }
    """
    BINDINGS = [
        Binding("ctrl+r", "build", "build", tooltip="save the config and build the mixture of experts"),
        Binding("escape", "back", "back", tooltip="back to the models (a running build goes on)"),
        Binding("f1", "help", "help", tooltip="this help, with every key of the build"),
    ]
    GROUP = "moe"
    HELP_TITLE = "Build a mixture of experts"
    HELP = (
        "A mixture of experts (a Mixtral) from the listed models: attention, norms and embeddings from the base "
        "(the model marked base, else the first), each layer's MLP of every listed model as one expert.\n\n"
        "gate mode says how each layer's router starts: hidden from the base model's hidden states on each "
        "expert's prompt, cheap_embed from the prompt's token embeddings, random and uniform_random from seed 0. "
        "experts per token is how many experts each token goes to. Each expert's prompt is an example of what "
        "should go to it (the random modes need none).\n\n"
        "ctrl+r saves the config (mergekit-moe's, which tui-merge moe replays; negative prompts and noise are "
        "written there by hand) and builds in the background, then verifies the output. Tab moves between the "
        "fields; escape goes back to the models."
    )

    class Said(Message):
        """A line for the log."""

        def __init__(self, line: str) -> None:
            super().__init__()
            self.line = line

    def __init__(self, state: WizardState) -> None:
        super().__init__()
        self.state = state
        self.running = False
        self.base = state.effective_base or (state.models[0] if state.models else None)

    def compose(self) -> ComposeResult:
        yield Static("", id="moe-title")
        with VerticalScroll(id="moe-form"):
            with Horizontal(classes="row"):
                yield Label("gate mode")
                yield Select(GATE_MODES, value="hidden", allow_blank=False, id="gate", compact=True)
            with Horizontal(classes="row"):
                yield Label("experts per token")
                yield TextField(str(min(2, max(len(self.state.models), 1))), id="per-token", type="integer",
                                compact=True)  # fmt: skip
            for index, name in enumerate(self.state.models):
                with Horizontal(classes="row"):
                    yield Label(f"prompt of {self.state.infos[name].label}"[:19])
                    yield TextField(placeholder="what should go to this expert", id=f"prompt-{index}", compact=True)
            with Horizontal(classes="row"):
                yield Label("output folder")
                yield TextField("./moe", id="moe-output", compact=True)
            with Horizontal(classes="row"):
                yield Label("save the config as")
                default = Path("moe.yaml")
                yield TextField(str(free_name(default) if default.exists() else default), id="moe-config",
                                compact=True)  # fmt: skip
        yield FollowingLog(id="moe-log")
        yield Static("", id="tool-status")
        yield Footer(show_command_palette=False, compact=True)

    def on_mount(self) -> None:
        count = len(self.state.models)
        title = self.query_one("#moe-title", Static)
        if count < 2 or self.base is None:
            title.update(Text(f"A mixture of experts takes at least two models; the Models step has {count}. escape "
                              "goes back.", style="bold red"))  # fmt: skip
            return
        title.update(
            Text.assemble(
                ("A Mixtral of ", "bold"),
                (f"{count} experts", "bold"),
                " on the base ",
                (self.state.infos[self.base].label, "bold"),
                ", one expert per listed model",
            )
        )
        self.query_one("#gate", Select).focus()

    def config_text(self) -> str:
        """The mergekit-moe config the fields describe; TuiMergeError when one cannot be used."""
        mode = self.query_one("#gate", Select).value
        per_token = self.query_one("#per-token", Input).value.strip()
        if not per_token.isdigit() or not 1 <= int(per_token) <= len(self.state.models):
            raise TuiMergeError(f"experts per token must be a whole number from 1 to {len(self.state.models)}.")
        experts = []
        for index, name in enumerate(self.state.models):
            prompt = self.query_one(f"#prompt-{index}", Input).value.strip()
            if not prompt and mode in ("hidden", "cheap_embed"):
                raise TuiMergeError(f"Give {self.state.infos[name].label} a prompt: gate mode {mode} routes by them.")
            experts.append({"source_model": name, **({"positive_prompts": [prompt]} if prompt else {})})
        config = {"base_model": self.base, "gate_mode": mode, "experts_per_token": int(per_token), "experts": experts}
        return "# a mixture of experts written by the tui-merge wizard; replay: tui-merge moe THIS_FILE OUT\n" + (
            yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
        )

    def action_build(self) -> None:
        if self.running or len(self.state.models) < 2:
            return
        output = self.query_one("#moe-output", Input).value.strip()
        path = Path(self.query_one("#moe-config", Input).value.strip() or "moe.yaml")
        try:
            text = self.config_text()
            if not output:
                raise TuiMergeError("Name the output folder.")
            if path.exists():
                raise TuiMergeError(f"{path} already exists; choose another name for the config.")
        except TuiMergeError as error:
            self.say(error.message, error=True)
            return
        path.write_text(text, encoding="utf-8")
        self.query_one("#moe-log", RichLog).clear()
        self.running = True
        self.say(f"config saved as {path}; building into {output}…")
        self.build(str(path), output)

    @work(thread=True, exclusive=True, exit_on_error=False, group="moe", description="build a mixture of experts")
    def build(self, config_path: str, output: str) -> None:
        from tui_merge.engine.verification import check_line, verify_output
        from tui_merge.models.info import load_model_info
        from tui_merge.tools.moe import build_moe
        from tui_merge.tools.moe_config import load_moe_config

        try:
            config, text = load_moe_config(config_path)
            base = load_model_info(config.base_model)
            experts = [load_model_info(expert.source_model) for expert in config.experts]
            build_moe(config, text, base, experts, Path(output), say=lambda line: self.post_message(self.Said(line)))
            report = verify_output(Path(output), on_check=lambda check: self.post_message(self.Said(check_line(check))))
        except (TuiMergeError, OSError) as error:
            self.post_message(self.Ended(getattr(error, "message", None) or str(error), error=True))
            return
        verdict = "and verified" if report.ok else "but verification failed (see the log)"
        self.post_message(self.Ended(f"Built {output} {verdict}; replay: tui-merge moe {config_path} {output}",
                                     error=not report.ok))  # fmt: skip

    def on_moe_screen_said(self, message: Said) -> None:
        self.query_one("#moe-log", RichLog).write(Text(message.line))

    def action_back(self) -> None:
        if self.running:
            self.say("the build goes on; wait for it to end before leaving")
            return
        self.dismiss()
