"""The offline byte-level BPE tokenizer used with ``--weights random``.

``roberta-base``'s own tokenizer files come from the Hugging Face hub; offline we cannot have
them, so the random text encoder gets a tokenizer of the same kind (byte-level BPE, as GPT-2 and
RoBERTa use), trained with the ``tokenizers`` library on :data:`CORPUS`, a small English text
embedded here. Training takes a few milliseconds and is deterministic (fixed corpus, merge ties
broken by pair order; tested across processes), so it is rebuilt on demand rather than cached, and
:func:`tokenizer_id` fingerprints the result for the store manifest.

Conventions copied from RoBERTa so that ids mean the same things to the model:

- special tokens ``<s>`` = 0 (bos/cls), ``<pad>`` = 1, ``</s>`` = 2 (eos/sep), ``<unk>`` = 3, and
  ``<mask>`` last (id ``len(vocab) - 1``, as RoBERTa's 50264 is its last id);
- every encoding is ``<s> tokens </s>``; no prefix space is added (RoBERTa's default);
- the 256 byte symbols are all in the vocabulary, so no text ever maps to ``<unk>`` and decoding
  with ``skip_special_tokens=True`` gives the input text back exactly.

The vocabulary is small (:data:`VOCAB_SIZE` at most) and every id is below RoBERTa's 50265, so
the random RoBERTa-base embedding table accepts it unchanged.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

BOS, PAD, EOS, UNK, MASK = "<s>", "<pad>", "</s>", "<unk>", "<mask>"
BOS_ID, PAD_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
VOCAB_SIZE = 2000  # upper bound for training; the small corpus stops earlier
MIN_FREQUENCY = 2

CORPUS = """\
The man in the red shirt walks to the door and opens it.
A woman in a blue dress picks up the cup from the table and drinks.
The child with the yellow ball runs across the room, then stops next to the sofa.
Who is holding the phone? The person in the black jacket is holding the phone.
The dog jumps over the small fence and runs towards the white car.
An adult man turns around, sits down on the chair and looks at the woman.
The girl in the green coat waves her hand to the boy on the left.
There is a brown horse behind the tree; it walks away slowly.
What does the old man hold in his hand? He holds a bag and a bottle.
The cat climbs onto the shelf, jumps down and leaves the kitchen.
A baby crawls on the floor while the mother watches from the doorway.
The red square moves left, the blue circle moves right and the green triangle jumps.
The yellow star spins in place, stops, and then walks to the right side.
A purple square enters from the top and leaves at the bottom.
Two people shake hands in front of the building and walk together down the street.
The woman with long hair pushes the man, who falls back against the wall.
The boy kicks the ball; the ball rolls under the bench near the bicycle.
Someone rides a bike past the parked truck and turns at the corner.
The man in the striped shirt goes to the sofa and turns to face the window.
The bird flies above the water and lands on the boat.
She puts the book on the desk, stands up and leaves the room quickly.
The elderly woman in a gray sweater hugs the little girl.
A person wearing glasses points at the screen and speaks to the others.
The tall man catches the frisbee, then throws it back to his friend.
The panda eats bamboo next to another panda lying on the ground.
Is there a toy in the hands of the child? Yes, the child holds a toy.
The white dog chases the black cat around the garden and under the table.
First the man stands still; after that he walks forward, jumps and falls.
The car drives away from the camera, while a man on the sidewalk watches it.
An orange ball bounces between the two players on the court.
"""


def _train() -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=MIN_FREQUENCY,
        special_tokens=[BOS, PAD, EOS, UNK],  # ids 0..3 in this order
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Merge ties are broken by pair order, so the result does not depend on the thread count
    # (checked across processes in tests/extract/test_backbone_tokenizer.py).
    tok.train_from_iterator(CORPUS.splitlines(), trainer=trainer)
    tok.add_special_tokens([MASK])  # appended: the last id, as in RoBERTa
    tok.post_processor = processors.RobertaProcessing(
        (EOS, EOS_ID), (BOS, BOS_ID), trim_offsets=True, add_prefix_space=False
    )
    return tok


@lru_cache(maxsize=1)
def _trained_json() -> str:
    return _train().to_str()


def build_bpe_tokenizer() -> Tokenizer:
    """A fresh copy of the built-in byte-level BPE tokenizer (see the module docstring)."""
    return Tokenizer.from_str(_trained_json())


def tokenizer_id() -> str:
    """``"bpe-builtin:<sha256 prefix>"`` of the trained tokenizer, for manifests."""
    digest = hashlib.sha256(_trained_json().encode("utf-8")).hexdigest()[:16]
    return f"bpe-builtin:{digest}"


def build_transformers_tokenizer():  # -> transformers.PreTrainedTokenizerFast
    """The built-in tokenizer wrapped for ``transformers``, called like ``RobertaTokenizerFast``."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=build_bpe_tokenizer(),
        bos_token=BOS,
        eos_token=EOS,
        sep_token=EOS,
        cls_token=BOS,
        pad_token=PAD,
        unk_token=UNK,
        mask_token=MASK,
        model_max_length=512,
    )
