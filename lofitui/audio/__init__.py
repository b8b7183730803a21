"""Audio: WAV I/O, resampling, mixing, and the real-time player."""
