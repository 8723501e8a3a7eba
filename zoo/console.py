"""The only module that talks to rich: tables, progress bars, errors. Library code logs instead."""

from __future__ import annotations

import logging
import os
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
    """Rich log lines on a terminal; one plain line per record otherwise (files and CI: no wrapping)."""
    level = logging.DEBUG if verbose else logging.INFO
    if os.environ.get("RANK", "0") != "0":  # under torchrun the other ranks say only what goes wrong
        level = logging.WARNING
    handler: logging.Handler
    if err_console.is_terminal:
        handler = RichHandler(console=err_console, show_path=verbose, show_time=False, markup=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logging.basicConfig(level=level, format="%(message)s", handlers=[handler], force=True)
    for noisy in ("urllib3", "filelock", "fsspec", "datasets", "httpx", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def print_error(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def print_traceback() -> None:
    err_console.print_exception(show_locals=False)


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]],
          caption: str | None = None) -> None:
    """A rich table on a terminal; a full-width Markdown table otherwise (nothing cut to 80 columns)."""
    if not console.is_terminal:
        text(markdown_table(title, columns, rows, caption))
        return
    t = Table(title=title, caption=caption, title_justify="left")
    for c in columns:
        t.add_column(escape(str(c)))
    for row in rows:
        t.add_row(*(escape(str(x)) for x in row))
    console.print(t)


def markdown_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]],
                   caption: str | None = None) -> str:
    def cells(values: Iterable[Any]) -> str:
        return "| " + " | ".join(str(v).replace("|", "\\|") for v in values) + " |"

    lines = [title, ""] if title else []
    lines += [cells(columns), "|" + "---|" * len(columns), *(cells(r) for r in rows)]
    if caption:
        lines += ["", caption]
    return "\n".join(lines) + "\n"


def text(message: str = "", markup: bool = False) -> None:
    console.print(message, highlight=False, soft_wrap=True, markup=markup)


def note(message: str) -> None:
    """A side remark on stderr (dim on a terminal), so stdout holds only the result."""
    err_console.print(escape(message), style="dim", highlight=False, soft_wrap=True)


def is_interactive() -> bool:
    return sys.stderr.isatty()


class TrainProgress:
    """Progress bar for ``zoo train``: budget fraction, loss, objective metrics, tokens/s, ETA."""

    def __init__(self, title: str) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[status]}"),
            console=err_console, transient=False, disable=not err_console.is_terminal,
        )
        self._task = self._progress.add_task(title, total=1.0, status="")

    def __enter__(self) -> TrainProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def __call__(self, record: dict[str, Any]) -> None:
        if record.get("kind") == "eval":
            logging.getLogger("zoo.train").info(
                "step %d eval: %s", record["step"], _fmt_metrics(record, skip=("kind", "step", "tokens", "flops")))
            return
        keep = {k: v for k, v in record.items() if k not in _TRAIN_SKIP}
        status = f"step {record['step']} {_fmt_metrics(keep)} {record.get('tokens_per_s', 0):,.0f} tok/s"
        self._progress.update(self._task, completed=record.get("progress", 0.0), status=status)
        if not err_console.is_terminal:
            logging.getLogger("zoo.train").info("%s", status)


_TRAIN_SKIP = ("kind", "step", "tokens", "flops", "progress", "tokens_per_s", "elapsed_s", "lr", "grad_norm", "mfu")


def _fmt_metrics(record: dict[str, Any], skip: tuple[str, ...] = ()) -> str:
    parts = []
    for k, v in record.items():
        if k in skip:
            continue
        parts.append(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}")
    return " ".join(parts)


def train_summary(rows: list[tuple[str, str]]) -> None:
    table("Run summary", ["", "value"], rows)


class BenchProgress:
    """Progress bars for ``zoo bench``: one bar per fine-tune, advanced per optimizer step."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("steps eta"),
            TimeRemainingColumn(), console=err_console, transient=True, disable=not err_console.is_terminal,
        )
        self._task: Any = None

    def __enter__(self) -> BenchProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def start(self, description: str, total: int) -> None:
        self._task = self._progress.add_task(description, total=total)

    def advance(self, n: int = 1) -> None:
        if self._task is not None:
            self._progress.advance(self._task, n)

    def finish(self) -> None:
        if self._task is not None:
            self._progress.remove_task(self._task)
            self._task = None
