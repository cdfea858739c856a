"""The offline byte-level BPE tokenizer: RoBERTa's special ids, exact round trip, determinism."""

from __future__ import annotations

import subprocess
import sys

import pytest

from stvg.extract.backbones.tokenizer import (
    build_bpe_tokenizer,
    build_transformers_tokenizer,
    tokenizer_id,
)

TEXTS = [
    "The man in the red stripe goes to the sofa and turns.",
    "what is the adult in white clothes holding?",
    "  two  spaces, tabs\tand\nnew lines  ",
    "Zürich café, naïve 日本語 and an emoji 🙂",
    "xqzv unseen-words 12345 !?",
]


@pytest.fixture(scope="module")
def tok():
    return build_bpe_tokenizer()


def test_special_token_ids_follow_roberta(tok):
    assert tok.token_to_id("<s>") == 0
    assert tok.token_to_id("<pad>") == 1
    assert tok.token_to_id("</s>") == 2
    assert tok.token_to_id("<unk>") == 3
    size = tok.get_vocab_size()
    assert tok.token_to_id("<mask>") == size - 1  # last, as roberta's 50264
    assert 256 + 5 <= size < 50265  # all byte symbols; fits roberta-base's embedding


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip_is_exact(tok, text):
    enc = tok.encode(text)
    assert enc.ids[0] == 0 and enc.ids[-1] == 2  # <s> ... </s>
    assert 3 not in enc.ids  # byte-level: nothing is unknown
    assert tok.decode(enc.ids, skip_special_tokens=True) == text


def test_common_words_are_single_tokens(tok):
    # trained merges: words of the built-in corpus become one token (with the G-dot space mark)
    assert tok.encode(" the red square").tokens[1:-1] == ["Ġthe", "Ġred", "Ġsquare"]


def test_transformers_wrapper_pads_with_id_1():
    hf = build_transformers_tokenizer()
    batch = hf(["a man", "the red square moves left"], padding="longest")
    short, long = batch["input_ids"]
    assert len(short) == len(long)
    n = batch["attention_mask"][0].count(1)
    assert short[n:] == [1] * (len(short) - n) and short[n - 1] == 2


def test_same_tokenizer_in_another_process():
    code = "from stvg.extract.backbones.tokenizer import tokenizer_id; print(tokenizer_id())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == tokenizer_id()
    assert tokenizer_id().startswith("bpe-builtin:")
