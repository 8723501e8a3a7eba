"""The only module that talks to rich: tables, progress bars, errors. Library code logs instead."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def setup_logging(verbose: bool) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    handler = RichHandler(console=err_console, show_path=verbose, show_time=False, markup=False)
    logging.basicConfig(level=level, format="%(message)s", handlers=[handler], force=True)
    for noisy in ("urllib3", "filelock", "fsspec", "datasets", "httpx", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def print_error(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def print_traceback() -> None:
    err_console.print_exception(show_locals=False)


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]],
          caption: str | None = None) -> None:
    t = Table(title=title, caption=caption, title_justify="left")
    for c in columns:
        t.add_column(escape(str(c)))
    for row in rows:
        t.add_row(*(escape(str(x)) for x in row))
    console.print(t)


def text(message: str = "", markup: bool = False) -> None:
    console.print(message, highlight=False, soft_wrap=True, markup=markup)


def is_interactive() -> bool:
    return sys.stderr.isatty()
