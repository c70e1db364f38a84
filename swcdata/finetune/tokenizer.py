"""A small byte-level BPE tokenizer trained on the dataset itself, with special tokens and a chat template.

Used by the `tiny` model source so that the whole loop runs without downloading anything. The
result is an ordinary `transformers` fast tokenizer: it saves and reloads with
`AutoTokenizer.from_pretrained`, and `apply_chat_template` works on it like on a Hub model's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

BOS, EOS, PAD, UNK = "<s>", "</s>", "<pad>", "<unk>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")

# Each turn is `<|role|>\n{content}`; the assistant turn ends with EOS, others with a newline. With
# add_generation_prompt the prompt ends with `<|assistant|>\n`, so the prompt is a prefix of the full text.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% else %}{{ '\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2048) -> PreTrainedTokenizerBase:
    """Train a byte-level BPE tokenizer on `texts` (deterministic for the same texts in the same order)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = [PAD, BOS, EOS, UNK, *ROLE_TOKENS]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), min_frequency=2)
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                   unk_token=UNK, extra_special_tokens=list(ROLE_TOKENS))
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "right"
    fast.model_max_length = 1_000_000
    return fast


def train_split_tokenizer(train: Iterable[dict[str, str]], vocab_size: int) -> PreTrainedTokenizerBase:
    """The tiny recipe's tokenizer: trained on the instructions and responses of the training split, in order.
    A run and its `--dry-run` both call this, so the dry run counts the same tokens the run trains on."""
    return train_tokenizer((t for row in train for t in (row["instruction"], row["response"])), vocab_size)
