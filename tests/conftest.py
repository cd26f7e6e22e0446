"""Shared fixtures: tiny models built once per test session."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

# No test may reach the real Hub: huggingface_hub reads this once, at import. Tests of the Hub path point it at
# a server on 127.0.0.1 instead (the ``hub`` fixture) and lift the flag for themselves.
os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402
from hub_server import HubServer  # noqa: E402

from model_factory import ModelFactory  # noqa: E402
from tui_merge.samples import SampleShape  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    """Under another Textual than the snapshots' own, their tests skip (``test_wizard_snapshots``), so every
    stored snapshot goes unused by design: syrupy would fail the run for it (exit 1 with every test passed)."""
    from snapshot_version import drawn_with_this_textual

    drawn_here = drawn_with_this_textual()
    if not drawn_here and hasattr(config.option, "warn_unused_snapshots"):
        config.option.warn_unused_snapshots = True


@pytest.fixture(scope="session")
def factory(tmp_path_factory: pytest.TempPathFactory) -> ModelFactory:
    return ModelFactory(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def llama_base(factory: ModelFactory) -> Path:
    return factory.llama("llama-base", tokenizer=True)


@pytest.fixture(scope="session")
def llama_finetune(factory: ModelFactory) -> Path:
    return factory.llama("llama-finetune", finetune_seed=1)


@pytest.fixture(scope="session")
def llama_unrelated(factory: ModelFactory) -> Path:
    return factory.llama("llama-unrelated", seed=7)


@pytest.fixture(scope="session")
def llama_second_finetune(factory: ModelFactory) -> Path:
    """Another fine-tune of llama-base: a third model that merges with the two above."""
    return factory.llama("llama-finetune-2", finetune_seed=6)


@pytest.fixture(scope="session")
def llama_vocab_plus(factory: ModelFactory) -> Path:
    return factory.llama("llama-vocab260", finetune_seed=2, shape=SampleShape(vocab_size=260))


@pytest.fixture(scope="session")
def llama_deeper(factory: ModelFactory) -> Path:
    return factory.llama("llama-deeper", finetune_seed=3, shape=SampleShape(layers=4))


@pytest.fixture(scope="session")
def llama_chat_tokens(factory: ModelFactory) -> Path:
    """A chat fine-tune with four more tokens (two special) and <|im_end|> as its end of sequence."""
    return factory.llama_tokens(
        "llama-chat260", finetune_seed=4, added=("<|im_start|>", "<|im_end|>", "<tool>", "</tool>"), eos="<|im_end|>"
    )


@pytest.fixture(scope="session")
def llama_reordered(factory: ModelFactory) -> Path:
    """A fine-tune with 256 tokens like the base, three pairs of them at each other's ids."""
    return factory.llama_tokens("llama-reordered", finetune_seed=5, swapped=3)


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """A stand-in Hub on 127.0.0.1 that huggingface_hub is pointed at (its endpoint and URL template), online,
    with an empty cache at ``tmp_path/hf-cache``."""
    from huggingface_hub import constants

    with HubServer() as server:
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        monkeypatch.setattr(
            constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.url + "/{repo_id}/resolve/{revision}/{filename}"
        )
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        yield server


def folder_digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``, to prove a command left inputs untouched."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(autouse=True)
def fixture_models_stay_untouched(request: pytest.FixtureRequest):
    """Every test: the shared fixture models (inputs of every end-to-end test) hash the same after as before.

    Copies that tests damage on purpose live under ``damaged/`` and are left out.
    """
    if "factory" not in request.fixturenames:
        yield
        return
    root = request.getfixturevalue("factory").root
    before = _model_digests(root)
    yield
    after = _model_digests(root)
    changed = sorted(name for name, digest in before.items() if after.get(name) != digest)
    assert not changed, f"the test changed fixture model files: {changed[:5]}"


def _model_digests(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.relative_to(root).parts[0] != "damaged"
    }


@pytest.fixture()
def workdir(
    tmp_path, monkeypatch, llama_base, llama_finetune, llama_unrelated, llama_vocab_plus, llama_chat_tokens,
    llama_reordered,
) -> Path:  # fmt: skip
    """A folder holding the fixture models under short relative names, as a user's would."""
    for name, source in (("base", llama_base), ("chat", llama_finetune), ("other", llama_unrelated),
                         ("wide-vocab", llama_vocab_plus), ("chat-tokens", llama_chat_tokens),
                         ("reordered", llama_reordered)):  # fmt: skip
        shutil.copytree(source, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session", autouse=True)
def config_checks(tmp_path_factory) -> Iterator[Path]:
    """The passed config checks of the whole session (``engine.output_config``), in a user cache folder of the
    session's own: fixtures wider than a test (which run before ``private_cache``) use that one."""
    folder = tmp_path_factory.mktemp("session-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUI_MERGE_CACHE", str(folder))
        yield folder / "config-checks"


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch, config_checks) -> Path:
    """Each test's own user cache folder, so no test reads or writes the real ~/.cache. Only the remembered
    config checks are shared by the session: each is keyed by everything it checked, and asking transformers
    again costs a subprocess some 3 s (a test of the check itself points TUI_MERGE_CACHE elsewhere)."""
    folder = tmp_path_factory.mktemp("cache")
    config_checks.mkdir(exist_ok=True)
    (folder / "config-checks").symlink_to(config_checks, target_is_directory=True)
    monkeypatch.setenv("TUI_MERGE_CACHE", str(folder))
    return folder
