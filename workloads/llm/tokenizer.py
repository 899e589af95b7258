"""A trivial deterministic tokenizer: UTF-8 bytes in, short printable text pieces out.

Prompts are encoded byte by byte (token id = byte value, so any vocabulary of at least 256
entries works). Generated ids are turned into syllables derived from the id, with a leading
space now and then, so a completion reads like (nonsense) text.
"""

from __future__ import annotations

_ONSETS = (
    "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z",
    "ch", "sh", "th", "st", "br", "tr",
)  # fmt: skip
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "oo", "ou", "ie")
_CODAS = ("", "", "n", "r", "s", "t", "l", "m")

BYTE_VOCAB = 256


class Tokenizer:
    """Byte-level encoder and syllable detokenizer for a vocabulary of `vocab_size` ids."""

    def __init__(self, vocab_size: int) -> None:
        if vocab_size < BYTE_VOCAB:
            raise ValueError(f"vocab_size must be at least {BYTE_VOCAB}, got {vocab_size}")
        self.vocab_size = vocab_size
        # The id fed for an empty prompt (the NUL byte, which text prompts practically never hold).
        self.bos_id = 0
        self._pieces = tuple(self._make_piece(i) for i in range(vocab_size))

    def encode(self, text: str) -> list[int]:
        """One token per UTF-8 byte."""
        return list(text.encode("utf-8"))

    def decode_bytes(self, ids: list[int]) -> str:
        """Inverse of `encode` (ids below 256); invalid UTF-8 is replaced, not raised."""
        return bytes(ids).decode("utf-8", errors="replace")

    def prompt_ids(self, text: str) -> list[int]:
        """Token ids for a prompt, never empty (the server refuses one longer than the
        context rather than cutting it)."""
        return self.encode(text) or [self.bos_id]

    def encode_prompt(self, text: str, max_len: int) -> list[int]:
        """Token ids for a prompt: truncated from the left to `max_len`, never empty."""
        return self.prompt_ids(text)[-max_len:]

    def piece(self, token_id: int) -> str:
        """The printable text of one generated token."""
        return self._pieces[token_id]

    def decode(self, ids: list[int]) -> str:
        """The text of a sequence of generated tokens."""
        return "".join(self._pieces[i] for i in ids)

    @staticmethod
    def _make_piece(token_id: int) -> str:
        n_on, n_vo = len(_ONSETS), len(_VOWELS)
        onset = _ONSETS[token_id % n_on]
        vowel = _VOWELS[(token_id // n_on) % n_vo]
        coda = _CODAS[(token_id // (n_on * n_vo)) % len(_CODAS)]
        mixed = (token_id * 2654435761) & 0xFFFFFFFF
        space = " " if (mixed >> 13) % 3 == 0 else ""
        stop = "." if token_id % 53 == 7 else ""
        return f"{space}{onset}{vowel}{coda}{stop}"
