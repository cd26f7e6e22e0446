"""Entry point for ``python -m tui_merge``."""

from tui_merge.cli import main

raise SystemExit(main())
