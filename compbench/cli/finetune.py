"""``compbench finetune``: train an encoder with a task head (classification, or CTC for speech recognition) on a
task and save it with its head."""

from __future__ import annotations

import argparse
import json

from compbench.cli.output import progress_bar
from compbench.models.loading import WEIGHTS
from compbench.outputs import check_output_folder
from compbench.quality.finetune import MODALITY_DEFAULTS, POOLINGS, PRECISIONS, FinetuneOptions, finetune


def add_parser(commands, name: str) -> None:
    defaults = FinetuneOptions()
    text, speech = MODALITY_DEFAULTS["text"], MODALITY_DEFAULTS["speech"]
    p = commands.add_parser(name, help="train a text or speech model with a task head on a task",
                            description="Train on the task's train split, keep the best dev epoch by the task's "
                                        "metric, save to DIR (measure it with compbench measure --model DIR --task "
                                        "TASK). A label task trains a classification head, a transcription task a "
                                        "CTC head over its transcripts' characters. Speech presets start from "
                                        "random initialisation unless --weights pretrained; a speech checkpoint's "
                                        "own head is replaced.")
    p.add_argument("--model", required=True, metavar="M")
    p.add_argument("--task", required=True, metavar="T")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--weights", choices=WEIGHTS, help="random or pretrained (default: random for speech presets, "
                                                      "pretrained otherwise)")
    p.add_argument("--epochs", type=int, help=f"default {text['epochs']} (text), {speech['epochs']} (speech)")
    p.add_argument("--batch-size", type=int,
                   help=f"default {text['batch_size']} (text), {speech['batch_size']} (speech)")
    p.add_argument("--lr", type=float, help=f"peak learning rate; default {text['learning_rate']:g} (text), "
                                            f"{speech['learning_rate']:g} (speech)")
    p.add_argument("--max-tokens", type=int, default=defaults.max_tokens, help="text: truncate longer inputs")
    p.add_argument("--max-seconds", type=float, help=f"speech: training crops at most this long "
                                                     f"(default {speech['max_seconds']:g})")
    p.add_argument("--pooling", choices=POOLINGS, help=f"speech: mean over frames, or a learned weighted sum of "
                                                       f"layers (default {speech['pooling']})")
    p.add_argument("--label-smoothing", type=float, help=f"of the cross-entropy; default "
                                                         f"{text['label_smoothing']:g} (text), "
                                                         f"{speech['label_smoothing']:g} (speech)")
    p.add_argument("--precision", choices=PRECISIONS, help="bf16: bfloat16 autocast; auto: bf16 where the CPU "
                                                           "computes it natively, else fp32 (default: auto for "
                                                           "speech, fp32 for text)")
    p.add_argument("--feature-encoder", choices=("frozen", "trained"),
                   help="speech recognition: freeze the CNN feature encoder or train it (default: frozen when the "
                        "model arrives trained, trained from random initialisation)")
    p.add_argument("--time-mask-frames", type=int, metavar="N",
                   help=f"speech: SpecAugment time masks of N frames over about 5 %% of the frames while training "
                        f"(default {speech['time_mask_frames']}: none)")
    p.add_argument("--hidden-dropout", type=float, metavar="P",
                   help=f"speech: the encoder's hidden dropout while training (default {speech['hidden_dropout']:g})")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--data-root", metavar="DIR", help="where task data lives (default: $COMPBENCH_DATA_ROOT)")


def run(args: argparse.Namespace) -> int:
    check_output_folder(args.out, "the fine-tuned model")
    options = FinetuneOptions(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                              max_tokens=args.max_tokens, max_seconds=args.max_seconds, pooling=args.pooling,
                              label_smoothing=args.label_smoothing, precision=args.precision,
                              time_mask_frames=args.time_mask_frames, hidden_dropout=args.hidden_dropout,
                              weights=args.weights, seed=args.seed, data_root=args.data_root,
                              freeze_feature_encoder=None if args.feature_encoder is None
                              else args.feature_encoder == "frozen")
    with progress_bar("loading") as update:
        report = finetune(args.model, args.task, args.out, options, update)
    shown = ("task", "initialisation", "source_head", "head", "history", "best_epoch", f"dev_{report['metric']}",
             "seconds")
    print(json.dumps({k: report[k] for k in shown if k in report}, indent=2))
    return 0
