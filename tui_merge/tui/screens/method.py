"""Step 3: the method, and a form for its parameters built from the registry."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from tui_merge.methods.registry import METHODS
from tui_merge.methods.spec import MethodSpec, ParamSpec
from tui_merge.tui.fields import ParamInput, ParamSwitch
from tui_merge.tui.step import StepScreen


class MethodScreen(StepScreen):
    """Pick a method with the arrows; its parameters appear on the right."""

    STEP = 2
    HELP = (
        "Arrows choose a method; its parameters appear on the right (tab to reach "
        "them). Numbers are checked as you type. Per-model fields are listed under "
        "each model. The per-layer value (t, or each model's weight) is edited in the "
        "next step, one value per layer."
    )

    def compose_body(self) -> ComposeResult:
        methods = OptionList(*[Option(method.name, id=method.name) for method in METHODS], id="methods")
        methods.highlighted = [method.name for method in METHODS].index(self.state.method_name)
        # An OptionList highlights its first option before the one set here; until the
        # chosen one arrives, highlight events are not the user's and must not change the method.
        self._awaiting_highlight: str | None = self.state.method_name
        with Horizontal():
            yield methods
            yield VerticalScroll(id="form")

    async def on_mount(self) -> None:
        self.query_one("#methods", OptionList).focus()
        await self.build_form(self.state.method)

    @on(OptionList.OptionHighlighted, "#methods")
    async def method_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        name = str(event.option.id)
        if self._awaiting_highlight is not None:
            if name == self._awaiting_highlight:
                self._awaiting_highlight = None
            return
        if name != self.state.method_name:
            self.state.method_name = name
            self.state.layers_changed()
            await self.build_form(self.state.method)

    async def build_form(self, method: MethodSpec) -> None:
        """Rebuild the parameter form for ``method``."""
        form = self.query_one("#form", VerticalScroll)
        await form.remove_children()
        widgets = [
            Static(Text(method.summary, style="bold")),
            Static(Text(f"takes {method.count_text()}", style="dim")),
        ]
        varying = method.per_layer_param
        for spec in method.params:
            if spec.name == varying or spec.hidden:
                continue
            owners = self.state.merged_models if spec.scope == "model" else [None]
            for model in owners:
                title = spec.name if model is None else f"{spec.name} · {self.state.infos[model].label}"
                widgets.append(Static(Text.assemble((title, "bold"), "\n", (spec.help, "dim")), classes="param-label"))
                widgets.append(self._field(spec, model))
        if varying:
            widgets.append(Static(Text(f"{varying}: per layer, in the next step", style="dim")))
        await form.mount_all(widgets)
        # Focus on a field scrolls the form to it; the form itself takes the focus (to scroll by keys) only when
        # it has no field, else tab stopped on it where nothing showed the focus.
        form.can_focus = not any(isinstance(widget, (ParamInput, ParamSwitch)) for widget in widgets)

    def _field(self, spec: ParamSpec, model: str | None) -> ParamInput | ParamSwitch:
        field_id = f"param-{spec.name}-{self.state.models.index(model) if model else 'global'}"
        value = self.state.value(spec.name, model)
        if spec.kind == "bool":
            return ParamSwitch(spec, model, bool(value), id=field_id)
        return ParamInput(spec, model, value, id=field_id)

    @on(ParamInput.Changed)
    def number_changed(self, event: ParamInput.Changed) -> None:
        field = event.input
        if not isinstance(field, ParamInput):
            return
        if field.problem:
            self.status(field.problem, error=True)
            return
        self.status("")
        self.state.set_value(field.spec.name, field.number, field.model)

    def collect(self) -> None:
        for field in self.query(ParamInput):
            if field.problem is None:
                self.state.set_value(field.spec.name, field.number, field.model)

    @on(ParamSwitch.Changed)
    def switch_changed(self, event: ParamSwitch.Changed) -> None:
        switch = event.switch
        if isinstance(switch, ParamSwitch):
            self.state.set_value(switch.spec.name, event.value, switch.model)

    def problem(self) -> str | None:
        method = self.state.method
        if not method.accepts(len(self.state.models), has_base=self.state.effective_base is not None):
            return f"{method.name} takes {method.count_text()}; you have {len(self.state.merged_models)}."
        for field in self.query(ParamInput):
            if field.problem:
                return f"Fix {field.spec.name}: {field.problem}."
        return None
