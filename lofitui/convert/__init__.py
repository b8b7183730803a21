"""Converters and graph builders that need onnx (and, for ACE-Step, torch).

- :mod:`~lofitui.convert.formats`: file names and format ids shared with the runtime (plain data);
- :mod:`~lofitui.convert.musicgen_fast`: MusicGen's fast decoder, rebuilt from a public export;
- :mod:`~lofitui.convert.acestep`: the ACE-Step exporter (optional ``export-acestep`` extra).

A lower layer than the engines: nothing here imports :mod:`lofitui.engines`, and onnx and torch are
imported lazily inside the functions that need them.
"""
