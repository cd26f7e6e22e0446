"""The wizard as a sequence of questions: the same steps and state as the full-screen one, one line at a time.

Models, findings (with the vocabulary fix when sizes differ), method and
base, parameters (the per-layer one as a number or a list of anchors spread
over the layers), output options, review of the config, then the merge with
progress lines. Every answer lands in ``WizardState``, which renders the
config exactly as the full-screen wizard does, so ``tui-merge run`` replays
it byte for byte. Both wizards offer the same choices with the same defaults,
asked of the state (``method_choices``, ``dtype_choices``, ``device_choices``,
``tokenizer_choices``); a method that cannot merge these models is refused
with the reason, as the full wizard's Method step does. ``back`` returns to
the previous step that asked something.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tui_merge.config.parameters import layer_values, outside_value, parse_anchors
from tui_merge.errors import BadInputError, TuiMergeError
from tui_merge.methods.spec import ParamSpec
from tui_merge.plain.prompts import GoBack, Prompter
from tui_merge.wizard.state import WizardState, free_name

_VOCAB_CHOICES = {"vocab_size": ("truncate", "pad", "union"), "token_order": ("position", "union")}


def run_plain(state: WizardState, prompter: Prompter, print_yaml: bool = False) -> int:
    """Ask every step, save the config, merge; the exit status of the merge.

    With ``print_yaml`` the config is printed on stdout once the parameters
    and output options are answered (no output folder or config file is
    asked for), and nothing is saved or merged.
    """
    prompter.say("tui-merge plain wizard: answer each question, Enter keeps the [default], back returns to the "
                 "previous step, Ctrl-C stops (the answers are lost until the review saves them).",
                 "heading")  # fmt: skip
    steps: list[Callable[[WizardState, Prompter], None]] = [
        ask_models, show_findings, ask_method, ask_parameters,
        lambda state, prompter: ask_output(state, prompter, paths=not print_yaml),
    ]  # fmt: skip
    asked = [False] * len(steps)
    index = 0
    while index < len(steps):
        before = prompter.questions
        try:
            steps[index](state, prompter)
        except GoBack:
            earlier = [step for step in range(index) if asked[step]]
            if not earlier:
                prompter.say("This is the first step.", "info")
                continue
            index = earlier[-1]  # a step that asked nothing (findings without a choice) is passed over
            continue
        asked[index] = prompter.questions > before
        index += 1
    if print_yaml:
        print(state.loaded_config().text.rstrip("\n"))
        return 0
    if not review(state, prompter):
        prompter.say(f"Nothing was merged; the config is saved as {state.config_path}.")
        return 0
    return merge(state)


def ask_models(state: WizardState, prompter: Prompter) -> None:
    """Models from the command line, or asked one per line until an empty answer; ``-NAME`` removes one."""
    from tui_merge.models.info import load_model_info

    prompter.say("Models", "heading")
    for name in state.models:
        prompter.say(f"  {name}")
    while True:
        hint = "another model folder or hub id (empty: done; -NAME removes one)" if state.models else (
            "a model folder or hub id")  # fmt: skip
        answer = prompter.text(f"Add {hint}")
        if not answer:
            if state.models:
                return
            prompter.say("Give at least one model.", "error")
            continue
        if answer.startswith("-") and answer[1:] in state.models:
            state.remove_model(answer[1:])
            prompter.say(f"removed {answer[1:]}; the models are {', '.join(state.models) or 'none yet'}")
            continue
        if answer in state.models:
            prompter.say(f"{answer} is already listed.", "error")
            continue
        try:
            info = load_model_info(answer)
        except TuiMergeError as error:
            prompter.say(error.message, "error")
            continue
        state.add_model(answer, info)


def show_findings(state: WizardState, prompter: Prompter) -> None:
    """The compatibility findings; a vocabulary fix to choose when they call for one; errors stop here."""
    report = state.report()
    prompter.say("Findings", "heading")
    if not report.findings:
        prompter.say("  none: the models can be merged as they are.")
    for finding in report.findings:
        prompter.say(f"  {finding.severity.upper()}: {finding.message}", finding.severity)
        for fix in finding.fixes:
            prompter.say(f"    {fix.key}: {fix.summary}")
    vocab = next((finding for finding in report.findings if finding.code in _VOCAB_CHOICES), None)
    if vocab is not None:
        possible = [
            key
            for key in _VOCAB_CHOICES[vocab.code]
            if not any(fix.key == key and fix.summary.startswith("not possible") for fix in vocab.fixes)
        ]
        summaries = {fix.key: fix.summary for fix in vocab.fixes}
        default = "union" if "union" in possible else possible[0]
        choices = [(f"{key}: {summaries.get(key, 'rows as they are')}", key) for key in possible]
        state.vocab = prompter.select("How should the vocabularies be reconciled?", choices, default)
    errors = [finding for finding in report.findings if finding.severity == "error" and finding is not vocab]
    if errors:
        raise BadInputError(f"These models cannot be merged: {errors[0].message}")


def ask_method(state: WizardState, prompter: Prompter) -> None:
    """The method (those that take this many models), then the base when it uses one."""
    before = (state.method_name, state.effective_base)
    count = len(state.models)
    while True:
        chosen = prompter.select("Merge method (tui-merge methods NAME describes one)", state.method_choices(),
                                 state.method_name)  # fmt: skip
        problem = state.method_problem(chosen)
        if problem is None:
            break
        prompter.say(f"{problem} Choose another, or go back and change the models.", "error")
    state.method_name = chosen
    method = state.method
    if method.base != "none":
        _ask_base(state, prompter, count)
    expected = ["t"] if method.per_layer_param == "t" else state.merged_models
    stale = state.grid is None or state.grid.keys != expected or (state.method_name, state.effective_base) != before
    if stale:
        state.rebuild_grid()  # a reopened config keeps its layer values while models, method and base stay


def _ask_base(state: WizardState, prompter: Prompter, count: int) -> None:
    """The base among the models, or none, offering only what the method accepts; no question when one fits."""
    method = state.method
    options: list[tuple[str, str | None]] = []
    if method.accepts(count, True):
        options = [(state.infos[name].label, name) for name in state.models]
    if method.base == "optional" and method.accepts(count, False):
        options.insert(0, ("no base", None))
    if len(options) == 1:
        state.base = options[0][1]
        return
    values = [value for _, value in options]
    default = state.base if state.base in values else values[0]
    state.base = prompter.select("Base model", options, default)


def ask_parameters(state: WizardState, prompter: Prompter) -> None:
    """The per-layer value of each column as a number or anchors, then every other parameter."""
    method = state.method
    depth = state.reference().depth
    if state.grid is not None:
        prompter.say(f"Per-layer {method.per_layer_param} over {depth} layers", "heading")
        if state.component_parts():
            recipe = " (as the classic slerp recipe has)" if method.name == "slerp" else ""
            split = prompter.confirm(f"Separate values for attention and MLP{recipe}", state.split)
            state.set_split(split)
        grid = state.grid
        varying_spec = method.param(method.per_layer_param)
        for column, spec_column in enumerate(grid.columns):
            key = spec_column.key
            label = "t" if key == "t" else f"{method.per_layer_param} of {state.infos[key].label}"
            if grid.split:
                label += f" ({spec_column.part.label if spec_column.part else 'rest of each layer'})"
            layers = [grid.value(row, column) for row, grid_row in enumerate(grid.rows) if grid_row.layer is not None]
            current = _number(layers[0]) if len(set(layers)) == 1 else "[" + ", ".join(map(_number, layers)) + "]"
            anchors = prompter.text(
                f"{label}: a number, or a list spread over the layers like [0, 0.5, 1]",
                current,
                lambda text: _anchors_problem(text, varying_spec),
            )
            if anchors == current:
                continue  # kept as it is, rows outside the layers included (a reopened config keeps its values)
            values = parse_anchors(anchors)
            by_layer = layer_values(values, depth)
            for row_index, row in enumerate(grid.rows):
                component = row.outside.component if row.outside else ""
                value = by_layer[row.layer] if row.layer is not None else outside_value(component, values)
                grid.set(row_index, column, value)
    varying = method.per_layer_param
    for spec in method.params:
        if spec.name == varying or spec.hidden:
            continue
        if spec.scope == "global":
            state.set_value(spec.name, _ask_value(prompter, spec, spec.name, state.value(spec.name)))
        else:
            for model in state.merged_models:
                label = f"{spec.name} of {state.infos[model].label}"
                state.set_value(spec.name, _ask_value(prompter, spec, label, state.value(spec.name, model)), model)


def _ask_value(prompter: Prompter, spec: ParamSpec, label: str, current: object) -> object:
    if spec.kind == "bool":
        return prompter.confirm(f"{label}: {spec.help}?", bool(current))
    default = "" if current is None else _number(current)
    answer = prompter.text(
        f"{label} ({spec.help}; {spec.range_text()})", default, lambda text: _scalar_problem(text, spec)
    )
    return int(answer) if spec.kind == "int" else float(answer)


def _scalar_problem(text: str, spec: ParamSpec) -> str | None:
    problem = spec.problem(spec.parse(text))
    return f"{spec.name} {problem}." if problem else None


def _anchors_problem(text: str, spec: ParamSpec) -> str | None:
    items = parse_anchors(text)
    if items is None:
        return "Write one number, or a list of numbers like [0, 0.5, 1]."
    problem = next(filter(None, map(spec.problem, items)), None)
    return f"Each value {problem}." if problem else None


def _number(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def ask_output(state: WizardState, prompter: Prompter, paths: bool = True) -> None:
    """Output folder, dtype, shard size, device, tokenizer and (with ``paths``) where the output and config
    are saved; Enter keeps each default, as the Textual wizard's Output step starts."""
    prompter.say("Output", "heading")

    def folder_problem(text: str) -> str | None:
        if not text:
            return "Name the output folder."
        target = Path(text).expanduser()
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            return f"{text} already exists and is not an empty folder; choose another."
        state.output = text
        return state.output_problem()

    if paths:
        state.output = prompter.text("Output folder", state.output or "./merged", folder_problem)
    state.out_dtype = prompter.select("Output dtype", state.dtype_choices(), state.out_dtype)

    state.shard_size = prompter.text("Largest shard file", state.shard_size, state.shard_size_problem)
    state.device = prompter.select("Device", state.device_choices(), state.device)
    state.tokenizer_source = prompter.select("Tokenizer", state.tokenizer_choices(), state.tokenizer_source)
    if not paths:
        return

    def config_problem(text: str) -> str | None:
        if not text:
            return "Name the config file."
        return f"{text} already exists; choose another name." if Path(text).exists() else None

    taken = Path(state.config_path).exists()
    default = str(free_name(Path(state.config_path))) if taken else state.config_path  # Enter never loops
    state.config_path = prompter.text("Save the config as", default, config_problem)


def review(state: WizardState, prompter: Prompter) -> bool:
    """Show the config, save it, and ask whether to merge now."""
    loaded = state.loaded_config()
    prompter.say("Review: the config this merge runs", "heading")
    for line in loaded.text.splitlines():
        prompter.say(f"  {line}")
    Path(state.config_path).write_text(loaded.text, encoding="utf-8")
    state.config_read = loaded.text
    prompter.say(f"Saved as {state.config_path}; replay with: tui-merge run {state.config_path} {state.output}")
    return prompter.confirm(f"Merge into {state.output} now?", True)


def merge(state: WizardState) -> int:
    """Merge the saved config with progress lines, through the same job as tui-merge run."""
    from tui_merge.engine.job import MergeJob
    from tui_merge.headless import run_in_console

    job = MergeJob(
        state.loaded_config(), Path(state.output), models=state.job_models(), keep_partial=True, verify=True
    )  # fmt: skip  (as the full wizard's Run step, the output is checked before use)
    return run_in_console(job, plain_progress=True)
