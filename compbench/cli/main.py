"""``compbench`` command line: one module per command, each a thin shell over a public function."""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import sys

# transformers imports torchao when it is installed; torchao then logs, at WARNING, kernels it has
# no hardware for (CUDA-only .so files) and torch a deprecation of its own. Not the user's concern.
for _noisy in ("torchao", "torch.utils._pytree"):
    logging.getLogger(_noisy).setLevel(logging.ERROR)

from transformers.utils import logging as transformers_logging  # noqa: E402

from compbench import __version__  # noqa: E402
from compbench.cli import compress, finetune, ls, measure, pipelines, report, sweep, validate  # noqa: E402
from compbench.errors import CompbenchError  # noqa: E402

# compbench draws its own progress; transformers' per-load "Loading weights" bars only clutter logs
transformers_logging.disable_progress_bar()

COMMANDS = {"measure": measure, "compress": compress, "finetune": finetune, "sweep": sweep,
            "pipelines": pipelines, "report": report, "ls": ls, "validate": validate}


@functools.cache
def build_parser() -> argparse.ArgumentParser:
    """The whole command line, built once per process (the Python API and the tests call :func:`main` many
    times; building it took longer than most commands' checks of their input)."""
    parser = argparse.ArgumentParser(
        prog="compbench",
        description="Measure what compressed speech and text Transformers cost: params, exact MACs, "
                    "wall-clock and memory.")
    parser.add_argument("--version", action="version", version=f"compbench {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in COMMANDS.items():
        module.add_parser(commands, name)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        argv = ["measure", *argv]  # `compbench` alone runs the embedded default measurement
    args = build_parser().parse_args(argv)
    try:
        status = COMMANDS[args.command].run(args)
        sys.stdout.flush()  # a reader that went away is met here, not at exit
        return status
    except CompbenchError as err:
        print(f"compbench: error: {printable(str(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("compbench: interrupted; nothing was written", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _reader_gone()


def printable(message: str) -> str:
    """``message`` on one line: characters that are not printable (a newline or a control character inside a
    key or a name the user wrote) shown as escapes."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in message)


def _reader_gone() -> int:
    """stdout's reader closed the pipe (``| head``): end quietly, as a command killed by SIGPIPE does, with
    what was to be written already written (results files are written before anything is printed)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's own flush at exit would raise again
    except (OSError, ValueError):
        pass
    return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
