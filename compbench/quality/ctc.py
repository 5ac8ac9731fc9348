"""CTC vocabularies and greedy decoding for transcription tasks (speech recognition).

The vocabulary is the characters of a task's training transcripts, plus the CTC blank (``<pad>``, id 0), an
unknown character (``<unk>``) and the word delimiter (``|``, for a space), as transformers'
``Wav2Vec2CTCTokenizer`` reads it; it is saved beside a checkpoint (``vocab.json``) so the model decodes as it
was trained. Decoding is greedy: the most likely token per frame, repeats merged, blanks dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import torch

BLANK, UNKNOWN, WORD_DELIMITER = "<pad>", "<unk>", "|"


def ctc_vocabulary(transcripts: Iterable[str]) -> dict[str, int]:
    """Token -> id: the blank (0), the unknown character, the word delimiter, then every character of
    ``transcripts`` but the space, in sorted order (the same transcripts give the same ids)."""
    characters = sorted({character for text in transcripts for character in text} - {" "})
    if WORD_DELIMITER in characters:
        raise ValueError(f"a transcript holds {WORD_DELIMITER!r}, the word delimiter of CTC vocabularies")
    return {token: index for index, token in enumerate([BLANK, UNKNOWN, WORD_DELIMITER, *characters])}


def ctc_tokenizer(vocabulary: dict[str, int], folder: str | Path):
    """A ``Wav2Vec2CTCTokenizer`` of ``vocabulary``, its ``vocab.json`` written into ``folder`` (which the
    checkpoint saved there keeps)."""
    from transformers import Wav2Vec2CTCTokenizer

    path = Path(folder) / "vocab.json"
    path.write_text(json.dumps(vocabulary, ensure_ascii=False, indent=0))
    return Wav2Vec2CTCTokenizer(str(path), unk_token=UNKNOWN, pad_token=BLANK, word_delimiter_token=WORD_DELIMITER,
                                bos_token=None, eos_token=None)


def greedy_transcripts(logits: torch.Tensor, tokenizer, frames: Iterable[int] | None = None) -> list[str]:
    """Each utterance's transcript from CTC ``logits`` (batch, frames, vocabulary): the most likely token per
    frame (of its first ``frames`` where given: padding frames are not read), repeats merged, blanks dropped,
    word delimiters as spaces."""
    best = logits.argmax(dim=-1).tolist()
    if frames is not None:
        best = [ids[:count] for ids, count in zip(best, frames, strict=True)]
    return [text.strip() for text in tokenizer.batch_decode(best)]
