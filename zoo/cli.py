"""``zoo`` command line. Commands are thin: parse options, build a config, call the library."""

from __future__ import annotations

import sys
from typing import Any

import click

from zoo import __version__
from zoo.errors import ZooError


class ZooGroup(click.Group):
    """Turns ``ZooError`` (bad input, config or plugin) into a one-line message and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        from zoo import console

        try:
            return super().invoke(ctx)
        except ZooError as exc:
            if ctx.obj and ctx.obj.get("verbose"):
                console.print_traceback()
            console.print_error(str(exc))
            ctx.exit(2)


@click.group(cls=ZooGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="objective-zoo")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging and full tracebacks.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """objective-zoo: pretrain language models with pluggable objectives on pluggable backbones,
    and compare the objectives fairly at equal compute.

    \b
      zoo train --objective mlm+nsp --backbone bert
      zoo bench runs/<run> --suite glue
      zoo compare runs/a runs/b
      zoo list
    """
    from zoo import console

    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    console.setup_logging(verbose)


@cli.command("list")
def list_cmd() -> None:
    """Objectives, backbones and tasks, their origin, and which objective trains which backbone."""
    from zoo import console
    from zoo.plugins import listing

    result = listing()
    titles = {"objective": "Objectives", "backbone": "Backbones", "task": "Tasks"}
    for kind, rows in result.plugins.items():
        console.table(titles[kind], ["name", "origin", "note"] if any(r[2] for r in rows) else ["name", "origin"],
                      [r if r[2] else r[:2] for r in rows] or [("(none)", "")])
    if result.matrix:
        backbones = sorted({b for row in result.matrix.values() for b in row})
        reasons: list[str] = []
        cells = []
        for obj, row in result.matrix.items():
            line = [obj]
            for bb in backbones:
                verdict = row[bb]
                if verdict != "yes":
                    reasons.append(f"{obj} x {bb}: {verdict}")
                    verdict = verdict.split(":", 1)[0] + f" [{len(reasons)}]"
                line.append(verdict)
            cells.append(line)
        console.table("Compatibility (objective x backbone)", ["objective", *backbones], cells)
        for i, reason in enumerate(reasons, 1):
            console.text(f"  [{i}] {reason}")

def main() -> None:
    cli.main(prog_name="zoo")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
