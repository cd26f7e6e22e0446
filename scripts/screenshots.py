"""Write an SVG screenshot of every wizard step at 80x24 (and the main ones at 120x40) into screenshots/.

Run from the repository root: ``.venv/bin/python scripts/screenshots.py``. It
builds the demo models in a temporary folder (no download), drives the wizard
with Textual's Pilot exactly as the tests do, and saves one SVG per step. The
Layers step is also drawn as ``screenshots/wizard.png`` for README's front page
(a PNG shows on every forge), with ``rsvg-convert`` (Debian's librsvg2-bin)
when it is installed.

Every picture is the same whenever it is taken: no blinking cursor, a fixed free-disk figure, and the Run step's
clocks reading 0 at the start and 1 s after, as the snapshot tests fix them (``tests/test_wizard_snapshots.py``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections import namedtuple
from pathlib import Path
from types import SimpleNamespace

from tui_merge.models.info import load_model_info
from tui_merge.samples import build_demo_models
from tui_merge.tui.app import WizardApp
from tui_merge.wizard.state import WizardState

SIZE = (80, 24)
SEARCH_SCORE = """\
import re, sys
t = float(re.search(r"^  t: ([0-9.]+)", open(sys.argv[1]).read(), re.M)[1])
print(round((t - 0.3) ** 2, 4))
"""
"""The Search screen's objective: a known function of t, so the picture shows a search that found something."""
OUTPUT = Path(__file__).resolve().parent.parent / "screenshots"


def state_for(*names: str, **values: object) -> WizardState:
    return WizardState(models=list(names), infos={name: load_model_info(name) for name in names}, **values)


async def shoot(name: str, app: WizardApp, keys: tuple[str, ...] = (), size: tuple[int, int] = SIZE) -> None:
    """Start ``app``, press ``keys``, wait for background work, save ``screenshots/NAME.svg``."""
    app.blink_cursor = False  # the same picture whenever it is taken
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        if keys:
            await pilot.press(*keys)
            await app.workers.wait_for_complete()
        await pilot.pause(0.3)
        await hold_still(pilot)
        app.save_screenshot(filename=f"{name}.svg", path=str(OUTPUT))
    print(f"screenshots/{name}.svg")


async def hold_still(pilot, pictures: int = 3) -> None:
    """Wait until ``pictures`` pictures in a row, a moment apart, are the same (a log still scrolling to its
    end gave a picture of wherever the scroll had got to)."""
    shown, same = None, 0
    for _ in range(100):
        await pilot.pause(0.1)
        picture = pilot.app.export_screenshot()
        same = same + 1 if picture == shown else 1
        if same >= pictures:
            return
        shown = picture


async def shoot_try(app: WizardApp) -> None:
    """The Run step's Try panel after a prompt and a perplexity run: ``screenshots/8-try.svg``."""
    app.blink_cursor = False
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        for keys in (("t",), (*"The quick brown fox", "enter"), ("ctrl+s",)):
            await pilot.press(*keys)
            await pilot.pause()
            await app.workers.wait_for_complete()
        await pilot.pause(0.3)
        app.save_screenshot(filename="8-try.svg", path=str(OUTPUT))
    print("screenshots/8-try.svg")


def chat_with_new_tokens(folder: Path) -> str:
    """demo-chat with four chat tokens added (new embedding rows), as chat fine-tunes ship."""
    from transformers import AddedToken, AutoModelForCausalLM, AutoTokenizer

    from tui_merge.samples import save_model

    model = AutoModelForCausalLM.from_pretrained(str(folder / "demo-chat"))
    tokenizer = AutoTokenizer.from_pretrained(str(folder / "demo-chat"))
    tokenizer.add_tokens([AddedToken(token, special=True) for token in ("<|im_start|>", "<|im_end|>")])
    tokenizer.add_tokens(["<tool>", "</tool>"])
    model.resize_token_embeddings(len(tokenizer))
    save_model(model, folder / "demo-chat-tokens")
    tokenizer.save_pretrained(str(folder / "demo-chat-tokens"))
    return "demo-chat-tokens"


def second_finetune(folder: Path) -> str:
    """Another fine-tune of demo-base, whose changes concentrate in the MLPs of the last two layers."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(folder / "demo-base", folder / "demo-code")
    weights = load_file(folder / "demo-code" / "model.safetensors")
    generator = torch.Generator().manual_seed(11)
    for name, tensor in weights.items():
        scale = 0.3 if (".layers.2.mlp." in name or ".layers.3.mlp." in name) else 0.01
        noise = torch.randn(tensor.shape, generator=generator) * tensor.float().abs().mean() * scale
        weights[name] = (tensor.float() + noise).to(tensor.dtype)
    save_file(weights, folder / "demo-code" / "model.safetensors", metadata={"format": "pt"})
    return "demo-code"


def vision_language_pair(folder: Path) -> tuple[str, str]:
    """A tiny qwen2_vl (the support table's) and a fine-tune of it: a language model of 3 layers beside a vision
    tower of 2."""
    import torch
    from support_table import others

    torch.manual_seed(0)
    return _pair(others()["qwen2_vl"](), folder, "vl")


def experts_pair(folder: Path) -> tuple[str, str]:
    """A tiny qwen2_moe (4 experts, a shared expert) and a fine-tune of it."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(
        "qwen2_moe", hidden_size=32, intermediate_size=64, moe_intermediate_size=32, num_hidden_layers=3,
        shared_expert_intermediate_size=32, num_attention_heads=4, num_key_value_heads=2, num_experts=4,
        num_experts_per_tok=2, vocab_size=128,
    )  # fmt: skip
    torch.manual_seed(0)
    return _pair(AutoModelForCausalLM.from_config(config), folder, "moe")


def _pair(model, folder: Path, name: str) -> tuple[str, str]:
    import torch

    model.save_pretrained(folder / f"{name}-base")
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn(parameter.shape, generator=generator))
    model.save_pretrained(folder / f"{name}-tuned")
    return f"{name}-base", f"{name}-tuned"


def front_page_png(svg: Path, png: Path) -> None:
    """``png`` drawn from ``svg`` with rsvg-convert, or a line saying how to get it."""
    if shutil.which("rsvg-convert") is None:
        print(f"{png.name} not redrawn: install rsvg-convert (librsvg2-bin) to draw it", file=sys.stderr)
        return
    subprocess.run(["rsvg-convert", "-w", "994", str(svg), "-o", str(png)], check=True)
    print(f"screenshots/{png.name}")


FIXED_DISK = namedtuple("usage", "total used free")(2 << 40, 1 << 40, 1 << 40)


def fix_machine_figures() -> None:
    """Free disk and the merge's clocks as the snapshot tests fix them, so a regeneration changes no picture."""
    from tui_merge.engine import executor
    from tui_merge.tui.screens import run

    shutil.disk_usage = lambda path: FIXED_DISK
    for module in (run, executor):
        readings = iter([0.0])
        module.time = SimpleNamespace(monotonic=lambda readings=readings: next(readings, 1.0))


async def main() -> None:
    OUTPUT.mkdir(exist_ok=True)
    fix_machine_figures()
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        build_demo_models(Path(folder))
        base, chat, other = "demo-base", "demo-chat", "demo-unrelated"
        await shoot("1-models", WizardApp(state_for(base, chat, other, base=base)), ("tab",))
        await shoot("2-analysis", WizardApp(state_for(base, chat), start_step=1))
        await shoot("2-analysis-unrelated", WizardApp(state_for(base, other), start_step=1), ("end",))
        tokens = chat_with_new_tokens(Path(folder))
        await shoot("2-analysis-vocab", WizardApp(state_for(base, tokens), start_step=1), ("end",))
        await shoot("3-method", WizardApp(state_for(base, chat, method_name="ties"), start_step=2))
        await shoot(
            "4-layers",
            WizardApp(state_for(base, chat, method_name="slerp"), start_step=3),
            ("down", "1", "m", "down", "down", "down", "0", "g", "up", "plus"),
        )
        front_page_png(OUTPUT / "4-layers.svg", OUTPUT / "wizard.png")
        await shoot(
            "4-layers-split",
            WizardApp(state_for(base, chat, method_name="slerp"), start_step=3),
            ("s", "down", "0", "m", *["down"] * 3, "1", "g", "right", "up", "minus", "minus", "minus", "right"),
        )
        await shoot("5-output", WizardApp(state_for(base, chat, output="merged"), start_step=4))
        await shoot(
            "6-review",
            WizardApp(state_for(base, chat, method_name="slerp", output="merged", out_dtype="bfloat16"), start_step=5),
        )
        await shoot(
            "6-review-stage",
            WizardApp(state_for(base, chat, method_name="slerp", output="merged", out_dtype="bfloat16"), start_step=5),
            ("ctrl+g",),
        )
        Path("score.py").write_text(SEARCH_SCORE)
        await shoot(
            "11-search",
            WizardApp(state_for(base, chat, method_name="slerp", output="merged"), start_step=5),
            ("ctrl+f", "tab", "8", "tab", *"command:python3 score.py $RECIPE", "ctrl+r"),
        )
        await shoot("9-extract-lora", WizardApp(state_for(base, chat, base=base)), ("ctrl+t", "l", "ctrl+r"))
        await shoot("10-moe", WizardApp(state_for(base, chat, base=base)), ("ctrl+t", "m", "tab", "tab", *"Hello",
                                                                          "tab", *"def f(x):", "ctrl+r"))  # fmt: skip
        fix_machine_figures()  # the clocks start again for each merge
        await shoot("7-run", WizardApp(state_for(base, chat, method_name="slerp", output="merged"), start_step=6))
        fix_machine_figures()
        await shoot_try(WizardApp(state_for(base, chat, method_name="slerp", output="merged-try"), start_step=6))
        await shoot("help-layers", WizardApp(state_for(base, chat, method_name="slerp"), start_step=3), ("f1",))
        code = second_finetune(Path(folder))
        await shoot("4-layers-three", WizardApp(state_for(base, chat, code, method_name="ties"), start_step=3))
        vl_base, vl_tuned = vision_language_pair(Path(folder))
        await shoot("4-layers-vision", WizardApp(state_for(vl_base, vl_tuned, method_name="slerp"), start_step=3),
                    (*["down"] * 9, "0", "down", "1"))  # fmt: skip
        moe_base, moe_tuned = experts_pair(Path(folder))
        await shoot("4-layers-experts", WizardApp(state_for(moe_base, moe_tuned, method_name="slerp"), start_step=3),
                    ("s", *["down"] * 4, "right", *["plus"] * 4, "right", "minus", "minus"))  # fmt: skip
        wide = (120, 40)
        await shoot("1-models-120x40", WizardApp(state_for(base, chat, code, base=base)), ("tab",), size=wide)
        await shoot("2-analysis-120x40", WizardApp(state_for(base, chat, code), start_step=1), size=wide)
        await shoot("4-layers-120x40", WizardApp(state_for(base, chat, code, method_name="ties"), start_step=3),
                    size=wide)  # fmt: skip
        await shoot("6-review-120x40", WizardApp(state_for(base, chat, method_name="slerp", output="merged2"),
                                                 start_step=5), size=wide)  # fmt: skip


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
