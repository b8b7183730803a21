"""The built-in ``synth`` engine: lofi synthesised from the prompt with numpy, no download.

Split by job: ``prompt`` (words and seed → plan), ``harmony`` (progressions, voicings),
``voices`` (electric piano, piano, pad, guitar, bass), ``drums`` (kit and patterns),
``texture`` (vinyl, rain), ``arrange`` (the form, every note placed), ``mixer`` (bars to
sound), ``dsp`` (the signal blocks), ``engine`` (the Engine contract).
"""

from lofitui.engines.synth.engine import BUILTIN_MODEL, MIX_LUFS, SynthEngine

__all__ = ["BUILTIN_MODEL", "MIX_LUFS", "SynthEngine"]
