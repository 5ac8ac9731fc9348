"""CTC vocabularies from transcripts, and greedy decoding (hand-made logits)."""

import pytest
import torch

from compbench.quality.ctc import ctc_tokenizer, ctc_vocabulary, greedy_transcripts


def test_the_vocabulary_is_the_transcripts_characters_after_blank_unknown_and_word_delimiter():
    vocabulary = ctc_vocabulary(["one two", "two one", "zero"])
    assert vocabulary == {"<pad>": 0, "<unk>": 1, "|": 2, "e": 3, "n": 4, "o": 5, "r": 6, "t": 7, "w": 8, "z": 9}
    assert ctc_vocabulary(["zero", "two one", "one two"]) == vocabulary  # the order of the transcripts is no matter
    with pytest.raises(ValueError, match="word delimiter"):
        ctc_vocabulary(["a|b"])


def test_transcripts_encode_and_decode_and_a_character_outside_the_vocabulary_is_unknown(tmp_path):
    tokenizer = ctc_tokenizer(ctc_vocabulary(["one two", "zero"]), tmp_path)
    assert (tmp_path / "vocab.json").is_file()
    ids = tokenizer("two zero").input_ids
    assert ids == [7, 8, 5, 2, 9, 3, 6, 5] and tokenizer.decode(ids) == "two zero"
    assert tokenizer("ten").input_ids == [7, 3, 4] and tokenizer("six").input_ids == [1, 1, 1]


def test_greedy_decoding_merges_repeats_drops_blanks_and_reads_only_each_utterances_frames(tmp_path):
    tokenizer = ctc_tokenizer(ctc_vocabulary(["one two"]), tmp_path)  # <pad> <unk> | e n o t w
    frames = [[5, 5, 0, 4, 4, 3, 2, 2, 6, 0, 7, 5, 5],  # o o _ n n e | | t _ w o o -> "one two"
              [6, 7, 0, 5, 0, 0, 0, 0, 0, 0, 5, 5, 5]]  # t w _ o, then padding frames that say "o"
    logits = torch.full((2, 13, 8), -5.0)
    for utterance, ids in enumerate(frames):
        for frame, token in enumerate(ids):
            logits[utterance, frame, token] = 5.0
    assert greedy_transcripts(logits, tokenizer) == ["one two", "twoo"]  # the padding read as speech
    assert greedy_transcripts(logits, tokenizer, frames=[13, 4]) == ["one two", "two"]
    doubled = torch.full((1, 3, 8), -5.0)
    doubled[0, [0, 1, 2], [5, 0, 5]] = 5.0  # o _ o: a blank between repeats keeps both
    assert greedy_transcripts(doubled, tokenizer) == ["oo"]
