"""Step 5: where and how to write the merge."""

from __future__ import annotations

from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Input, Label, Select

from tui_merge.engine.preflight import check_output_safety
from tui_merge.errors import BadInputError
from tui_merge.tui.fields import TextField
from tui_merge.tui.messages import DevicesListed
from tui_merge.tui.modals import ConfirmScreen
from tui_merge.tui.step import StepScreen


class OutputScreen(StepScreen):
    """Output folder, dtype, shard size, device, tokenizer source and config path."""

    STEP = 4
    HELP = (
        "Tab moves between fields; arrows and enter open a choice list. The output "
        "folder must not be inside an input model; an existing non-empty folder is "
        "replaced only after you confirm, and only once the merge has succeeded. "
        "The config is saved at the path below whenever the merge runs.\n\n"
        "Tokenizer: automatic takes the model that ships special_tokens_map.json, "
        "else the base, else the first model. Naming one (or the union) matches the "
        "vocabulary rows to it by token unless the analysis step chose truncate or "
        "pad; a tokenizer with more ids than the output has rows is refused."
    )

    def compose_body(self) -> ComposeResult:
        state = self.state
        with VerticalScroll(id="output-form"):
            yield Label("output folder")
            yield TextField(state.output, placeholder="./merged", id="output", compact=True)
            yield Label("output dtype")
            dtypes = [(label, value or "") for label, value in state.dtype_choices()]  # "" stands for None
            yield Select(dtypes, value=state.out_dtype or "", allow_blank=False, id="dtype", compact=True)
            yield Label("largest shard (e.g. 5GB, 2000MiB)")
            yield TextField(state.shard_size, id="shard-size", compact=True)
            yield Label("device")
            yield Select(state.device_choices(), value=state.device, allow_blank=False, id="device", compact=True)
            yield Label("tokenizer from")
            # The plain wizard's choices, automatic named short (F1 explains it) and as "" (a Select value).
            sources = [("automatic (see F1)" if value is None else label, value or "")
                       for label, value in state.tokenizer_choices()]  # fmt: skip
            yield Select(sources, value=state.tokenizer_source or "", allow_blank=False, id="tokenizer", compact=True)
            yield Label("save the config as")
            yield TextField(state.config_path, id="config-path", compact=True)

    def on_mount(self) -> None:
        self.query_one("#output", Input).focus()
        self.list_gpus()

    def on_descendant_focus(self, event) -> None:
        """Mark the label above the focused field, so the field being typed in is plain to see."""
        labels = list(self.query("#output-form Label"))
        fields = [widget for widget in self.query_one("#output-form").children if not isinstance(widget, Label)]
        for label, field in zip(labels, fields):
            label.set_class(field is event.widget or event.widget in field.ancestors, "focused")
            label.update(("▸ " if label.has_class("focused") else "") + str(label.content).removeprefix("▸ "))

    @work(thread=True, exit_on_error=False, group="devices", description="list CUDA devices")
    def list_gpus(self) -> None:
        import torch

        if not torch.cuda.is_available():
            return
        options = [choice for choice in self.state.device_choices() if not choice[1].startswith("cuda:")]
        for index in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(index)
            name = torch.cuda.get_device_name(index)
            options.append(
                (f"cuda:{index} {name}, {free / 2**30:.0f} of {total / 2**30:.0f} GiB free", f"cuda:{index}")
            )
        self.post_message(DevicesListed(options))

    def on_devices_listed(self, message: DevicesListed) -> None:
        self.query_one("#device", Select).set_options(message.choices)

    @on(Input.Changed, "#output")
    def output_changed(self, event: Input.Changed) -> None:
        self.state.output = event.value.strip()
        self.state.replace_output = False

    @on(Input.Changed, "#shard-size")
    def shard_changed(self, event: Input.Changed) -> None:
        self.state.shard_size = event.value.strip()

    @on(Input.Changed, "#config-path")
    def config_path_changed(self, event: Input.Changed) -> None:
        self.state.config_path = event.value.strip()

    @on(Select.Changed)
    def choice_changed(self, event: Select.Changed) -> None:
        value = event.value if isinstance(event.value, str) else ""
        if event.select.id == "dtype":
            self.state.out_dtype = value or None
        elif event.select.id == "device":
            self.state.device = value or "auto"
        elif event.select.id == "tokenizer":
            self.state.tokenizer_source = value or None

    def problem(self) -> str | None:
        state = self.state
        problem = state.output_problem()
        if problem:
            return problem
        try:
            check_output_safety(Path(state.output), force=True)
        except BadInputError as error:
            return error.message
        problem = state.shard_size_problem(state.shard_size)
        if problem:
            return problem
        if not state.config_path:
            return "Choose where to save the config."
        return None

    def collect(self) -> None:
        state = self.state
        output = self.query_one("#output", Input).value.strip()
        if output != state.output:
            state.output, state.replace_output = output, False
        state.shard_size = self.query_one("#shard-size", Input).value.strip()
        state.config_path = self.query_one("#config-path", Input).value.strip()

    def go_on(self) -> None:
        """Go on; an existing non-empty output folder is replaced only after the person confirms."""
        target = Path(self.state.output).expanduser()
        if target.exists() and (not target.is_dir() or any(target.iterdir())) and not self.state.replace_output:

            def answered(yes: bool | None) -> None:
                if yes:
                    self.state.replace_output = True
                    self.wizard.next_step(self.STEP)

            self.app.push_screen(
                ConfirmScreen(f"{target} exists and is not empty. Replace it once the merge has succeeded?"), answered
            )
            return
        self.wizard.next_step(self.STEP)
