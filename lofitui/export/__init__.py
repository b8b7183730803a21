"""Converters from upstream checkpoints to the ONNX files lofi runs (optional extra: torch).

Nothing here is imported at run time; each exporter imports torch and friends lazily.
"""
