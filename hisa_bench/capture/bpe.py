"""The byte-level BPE tokenizer stored in a GGUF file (tokenizer.ggml.*), built with the `tokenizers`
package from the file's own vocabulary and merges: no hub, no network."""
from __future__ import annotations

from ..errors import HisaBenchError
from .gguf_llama import INSTALL_HINT, GGUFFile

# llama.cpp names the pre-tokenizer ("tokenizer.ggml.pre"); these are the ones whose splitting rules
# we reproduce. "smollm" splits every digit on its own before the GPT-2 byte-level regex.
_SPLIT_DIGITS = {"smollm": True, "gpt2": False, "default": False}

_CONTROL = 3  # llama.cpp token type of special (control) tokens


class GGUFTokenizer:
    def __init__(self, g: GGUFFile):
        try:
            from tokenizers import Tokenizer, decoders, models, pre_tokenizers
        except ImportError:
            raise HisaBenchError(f"the tokenizers package is not installed: {INSTALL_HINT}") from None
        kind = g.field("tokenizer.ggml.model")
        if kind != "gpt2":
            raise HisaBenchError(f"{g.path.name}: tokenizer model {kind!r} is not supported (only byte-level BPE, 'gpt2')")
        pre = g.field("tokenizer.ggml.pre", "default")
        if pre not in _SPLIT_DIGITS:
            raise HisaBenchError(f"{g.path.name}: pre-tokenizer {pre!r} is not supported "
                                 f"(known: {', '.join(sorted(_SPLIT_DIGITS))})")
        tokens = g.field("tokenizer.ggml.tokens")
        merges = [tuple(m.split(" ", 1)) for m in g.field("tokenizer.ggml.merges")]
        types = g.field("tokenizer.ggml.token_type", [])
        vocab = {t: i for i, t in enumerate(tokens)}
        if len(vocab) != len(tokens):
            raise HisaBenchError(f"{g.path.name}: the tokenizer vocabulary has duplicate entries")
        tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
        byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        if _SPLIT_DIGITS[pre]:
            tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
        else:
            tok.pre_tokenizer = byte_level
        tok.decoder = decoders.ByteLevel()
        special = [tokens[i] for i, t in enumerate(types) if t == _CONTROL]
        if special:
            tok.add_special_tokens(special)
        self._tok = tok
        self.vocab_size = len(tokens)
        self.pre = pre

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=False)
