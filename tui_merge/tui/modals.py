"""Dialogs: help, yes/no confirmation, errors, and pickers for folders and cached models."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DirectoryTree, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from tui_merge.tui.fields import TextField

_Answer = TypeVar("_Answer")


class Dialog(ModalScreen[_Answer]):
    """A box in the middle of the screen; its body is a ``Vertical`` with class ``dialog``."""

    DEFAULT_CSS = """
    Dialog {
        align: center middle;
    }
    Dialog .dialog {
        width: 70;
        height: auto;
        max-height: 20;
        border: thick $accent;
        background: $surface;
        padding: 1 2;
    }
    Dialog .dialog.tall {
        height: 20;
    }
    Dialog .dialog.error {
        border: thick $error;
    }
    """


class HelpScreen(Dialog[None]):
    """A step's help: paragraphs that wrap to the dialog's width, then every key of the step; it scrolls."""

    DEFAULT_CSS = """
    HelpScreen .dialog {
        width: 90%;
        max-width: 100;
        height: 1fr;
        max-height: 40;
        margin: 1 0;
    }
    HelpScreen VerticalScroll {
        height: 1fr;
    }
    HelpScreen #help-keys {
        margin-top: 1;
    }
    """
    BINDINGS = [Binding("escape,f1,q", "dismiss", "Close")]

    def __init__(self, title: str, text: str, keys: list[tuple[str, str]] = ()) -> None:
        super().__init__()
        self.title_text, self.text, self.keys = title, text, list(keys)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(f"Help: {self.title_text}", style="bold"))
            with VerticalScroll(id="help-scroll"):
                yield Static(self.text, id="help-text")
                if self.keys:
                    table = Table.grid(padding=(0, 2))
                    table.add_column(style="bold", no_wrap=True)
                    table.add_column()
                    for keys, description in self.keys:
                        table.add_row(keys, description)
                    yield Static(Group(Text("Keys", style="bold underline"), table), id="help-keys")
            yield Label(Text("↑/↓ pgup/pgdn scroll · escape closes", style="dim"))

    def on_mount(self) -> None:
        self.query_one("#help-scroll").focus()


class ConfirmScreen(Dialog[bool]):
    """A yes/no question; y or enter answers yes, n or escape no."""

    BINDINGS = [Binding("y,enter", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]

    def __init__(self, question: str, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.question)
            yield Label(Text("y: yes   n or escape: no", style="dim"))

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class ChoiceScreen(Dialog[str | None]):
    """A question with a few answers, each on its own key; escape answers None (do nothing)."""

    BINDINGS = [Binding("escape", "dismiss(None)", "cancel")]

    def __init__(self, question: str, answers: list[tuple[str, str]]) -> None:
        """``answers`` are (key, what it does) pairs; the key pressed is the answer."""
        super().__init__()
        self.question, self.answers = question, answers

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.question)
            keys = "   ".join(f"{key}: {label}" for key, label in self.answers)
            yield Static(Text(f"{keys}   escape: cancel", style="dim"))

    def on_key(self, event) -> None:
        if event.key in dict(self.answers):
            event.stop()
            self.dismiss(event.key)


class ErrorScreen(Dialog[None]):
    """A failure, in words, instead of a crash (or, with ``title``, news that needs no answer)."""

    BINDINGS = [Binding("escape,enter", "dismiss", "Close")]

    def __init__(self, message: str, title: str | None = None) -> None:
        super().__init__()
        self.message, self.title_text = message, title

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog" if self.title_text else "dialog error"):
            yield Label(Text(self.title_text or "Error", style="bold" if self.title_text else "bold red"))
            yield Static(self.message)
            yield Label(Text("enter or escape closes", style="dim"))


class PathPrompt(Dialog[str | None]):
    """Ask for a file path, completing names as they are typed; escape cancels."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, question: str, suffixes: tuple[str, ...]) -> None:
        super().__init__()
        self.question, self.suffixes = question, suffixes

    def compose(self) -> ComposeResult:
        from tui_merge.tui.path_suggester import PathSuggester

        with Vertical(classes="dialog"):
            yield Label(Text(self.question, style="bold"))
            yield TextField(
                placeholder="path (right arrow accepts the completion)",
                suggester=PathSuggester(self.suffixes),
                id="path",
            )
            yield Label(Text("enter opens   escape cancels", style="dim"))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(event.value.strip())


class FolderPicker(Dialog[str | None]):
    """Browse folders with the keyboard and pick one.

    Arrows move, enter opens a folder, ``p`` picks the highlighted one.
    backspace (or left on the top line) goes to the parent folder, ``~`` home; a
    path typed in the field at the top (``/`` or ``.`` starts one, tab reaches
    it) jumps there on enter.
    """

    DEFAULT_CSS = """
    FolderPicker DirectoryTree {
        height: 1fr;
    }
    """
    BINDINGS = [
        Binding("escape", "dismiss(None)", "cancel"),
        Binding("p", "pick_highlighted", "pick", tooltip="pick the highlighted folder"),
        Binding("backspace", "up", "parent", tooltip="go to the parent folder"),
        Binding("tilde", "go_home", "home", tooltip="go to your home folder"),
    ]

    KEYS = "enter opens · p picks · backspace: parent · ~ home · / or . types a path"

    def __init__(self, start: Path, title: str = "Choose a model folder") -> None:
        super().__init__()
        self.start = start
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog tall"):
            yield Label(Text(self.title_text, style="bold"))
            yield TextField(str(self.start), id="folder", compact=True, select_on_focus=False)
            yield DirectoryTree(self.start)
            yield Static(Text(self.KEYS, style="dim"), id="picker-line")

    def on_mount(self) -> None:
        self.query_one(DirectoryTree).focus()

    @property
    def folder(self) -> Path:
        """The folder the tree shows."""
        return Path(self.query_one(DirectoryTree).path)

    def go(self, folder: Path) -> None:
        """Show ``folder`` in the tree and in the field."""
        tree = self.query_one(DirectoryTree)
        tree.path = folder
        tree.focus()
        self.query_one("#folder", TextField).value = str(folder)

    def action_up(self) -> None:
        if self.query_one(DirectoryTree).has_focus:
            self.go(self.folder.parent)

    def action_go_home(self) -> None:
        self.go(Path.home())

    def on_key(self, event) -> None:
        tree = self.query_one(DirectoryTree)
        if not tree.has_focus:
            return
        if event.key == "left" and tree.cursor_node in (None, tree.root):
            event.stop()
            self.go(self.folder.parent)
        elif event.character in ("/", "."):
            event.stop()
            field = self.query_one("#folder", TextField)
            field.value = event.character
            field.focus()
            field.cursor_position = len(field.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        folder = Path(event.value.strip()).expanduser()
        if not folder.is_absolute():
            folder = self.folder / folder
        folder = folder.resolve()
        line = self.query_one("#picker-line", Static)
        if folder.is_dir():
            self.go(folder)
            line.update(Text(self.KEYS, style="dim"))
        else:  # said in the dialog's own line: a toast would cover the dialog
            line.update(Text(f"{event.value.strip()} is not a folder.", style="bold red"))

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        self.dismiss(str(event.path.parent))

    def action_pick_highlighted(self) -> None:
        node = self.query_one(DirectoryTree).cursor_node
        if node is not None and node.data is not None:
            path = Path(node.data.path)
            self.dismiss(str(path if path.is_dir() else path.parent))


class CachePicker(Dialog[str | None]):
    """Models in the local Hugging Face cache with size and last use; enter picks one."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, entries: list[tuple[str, str]]) -> None:
        super().__init__()
        self.entries = entries

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog tall"):
            yield Label(Text("Models in the local Hugging Face cache", style="bold"))
            if self.entries:
                yield OptionList(*[Option(text, id=repo) for repo, text in self.entries])
            else:
                yield Static("The cache holds no models; type a hub id (org/name) to inspect it from the Hub.")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)


class TooSmallScreen(ModalScreen[None]):
    """Shown instead of the wizard while the terminal is smaller than the wizard's 80x24."""

    DEFAULT_CSS = """
    TooSmallScreen {
        align: center middle;
        background: $background;
    }
    TooSmallScreen Static {
        width: 100%;
        text-align: center;
    }
    """

    def compose(self) -> ComposeResult:
        yield Static(id="too-small")

    def on_mount(self) -> None:
        self.say(self.app.size.width, self.app.size.height)

    def say(self, width: int, height: int) -> None:
        """Name the size the terminal has and the size it needs."""
        self.query_one("#too-small", Static).update(
            f"The terminal is {width}x{height}; tui-merge needs at least 80x24. Enlarge it to go on (ctrl+q quits)."
        )
