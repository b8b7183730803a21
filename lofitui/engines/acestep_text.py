"""ACE-Step 1.5 text side: the caption and lyric templates and their tokenization.

Byte-for-byte what diffusers' ``AceStepPipeline._format_prompt`` and ``encode_prompt`` build for
text2music: the model was trained on exactly these strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from lofitui.errors import ModelError

INSTRUCTION = "Fill the audio semantic mask based on the given conditions:"
CAPTION_TEMPLATE = "# Instruction\n{}\n\n# Caption\n{}\n\n# Metas\n{}<|endoftext|>\n"
LYRIC_TEMPLATE = "# Languages\n{}\n\n# Lyric\n{}<|endoftext|>"
END_OF_TEXT = "<|endoftext|>"
MAX_TEXT_TOKENS = 256
MAX_LYRIC_TOKENS = 2048


def metas(
    bpm: int | None = None,
    keyscale: str | None = None,
    timesignature: str | None = None,
    duration_s: float | None = None,
) -> str:
    """The "# Metas" block: missing values read N/A; the duration is truncated to whole seconds."""
    bpm_str = str(bpm) if bpm is not None and bpm > 0 else "N/A"
    ts_str = timesignature if timesignature and timesignature.strip() else "N/A"
    ks_str = keyscale if keyscale and keyscale.strip() else "N/A"
    dur_str = (
        f"{int(duration_s)} seconds" if duration_s is not None and duration_s > 0 else "30 seconds"
    )
    return (
        f"- bpm: {bpm_str}\n- timesignature: {ts_str}\n- keyscale: {ks_str}\n"
        f"- duration: {dur_str}\n"
    )


def caption_text(
    prompt: str,
    duration_s: float,
    bpm: int | None = None,
    keyscale: str | None = None,
    timesignature: str | None = None,
    instruction: str = INSTRUCTION,
) -> str:
    if not instruction.endswith(":"):
        instruction += ":"
    return CAPTION_TEMPLATE.format(
        instruction, prompt, metas(bpm, keyscale, timesignature, duration_s)
    )


def lyric_text(lyrics: str = "", language: str = "en") -> str:
    """Instrumental tracks use empty lyrics: the template is still filled in."""
    return LYRIC_TEMPLATE.format(language, lyrics)


@dataclass(frozen=True)
class Tokens:
    """One prompt's token ids [1, T] int64 and its all-true mask [1, T] bool."""

    ids: np.ndarray
    mask: np.ndarray


def open_tokenizer(path: Path, max_length: int) -> Tokenizer:
    """A HF ``tokenizers`` JSON, unpadded and truncated to ``max_length`` ids (ModelError if
    unreadable)."""
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as exc:
        raise ModelError(f"cannot load tokenizer {path}: {exc}") from exc
    tok.no_padding()
    tok.enable_truncation(max_length=max_length)
    return tok


def tokenize(tok: Tokenizer, text: str) -> Tokens:
    """``text`` with the tokenizer's special tokens, as a batch of one."""
    ids = np.asarray(tok.encode(text, add_special_tokens=True).ids, dtype=np.int64)[None, :]
    return Tokens(ids=ids, mask=np.ones(ids.shape, dtype=np.bool_))


class AceStepTokenizer:
    """The Qwen3 tokenizer with the pipeline's truncation limits (256 caption, 2048 lyric)."""

    def __init__(self, path: Path) -> None:
        self._caption = open_tokenizer(path, MAX_TEXT_TOKENS)
        self._lyric = open_tokenizer(path, MAX_LYRIC_TOKENS)
        if self._caption.token_to_id(END_OF_TEXT) is None:
            raise ModelError(f"{path} has no {END_OF_TEXT} token: not an ACE-Step tokenizer")

    def caption(self, text: str) -> Tokens:
        return tokenize(self._caption, text)

    def lyrics(self, text: str) -> Tokens:
        return tokenize(self._lyric, text)
