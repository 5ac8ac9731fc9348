"""``compbench finetune``: fine-tune a text encoder on a task and save it with its head."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from compbench.quality.finetune import FinetuneOptions, finetune


def add_parser(commands, name: str) -> None:
    defaults = FinetuneOptions()
    p = commands.add_parser(name, help="fine-tune a text model with a classification head on a task",
                            description="Fine-tune on the task's train split, keep the best dev epoch, save to DIR "
                                        "(measure it with compbench measure --model DIR --task TASK).")
    p.add_argument("--model", required=True, metavar="M")
    p.add_argument("--task", required=True, metavar="T")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--lr", type=float, default=defaults.learning_rate)
    p.add_argument("--max-tokens", type=int, default=defaults.max_tokens)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--data-root", metavar="DIR", help="where task data lives (default: $COMPBENCH_DATA_ROOT)")


def run(args: argparse.Namespace) -> int:
    options = FinetuneOptions(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                              max_tokens=args.max_tokens, seed=args.seed, data_root=args.data_root)
    console = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console,
                  transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("loading", total=1.0)
        report = finetune(args.model, args.task, args.out, options,
                          lambda text, done: bar.update(task, description=text, completed=done))
    print(json.dumps({k: report[k] for k in ("task", "history", "best_epoch", "dev_accuracy")}, indent=2))
    return 0
