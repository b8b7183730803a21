"""Audio: samples, WAV I/O, resampling, mixing, loudness, and playback.

Import rule: modules here import only each other, :mod:`lofitui.errors` and
:mod:`lofitui.atomic` (plus numpy, soxr, soundfile, sounddevice, pyloudnorm and scipy); nothing
above them. ``loudness`` brings every track to one integrated loudness under a true-peak
ceiling, where the audio is made (never in the audio callback).

Playback is split by job:

- ``types``: :class:`Audio`, the sample type every layer shares;
- ``timeline``: which track sounds at which frame (queue, crossfade, skip, rewrite, growing
  tracks) and the track events by frame position; pure, no device, thread or clock;
- ``transport``: volume, mute and pause state, and the gain ramps that apply it;
- ``events``: what players tell their listeners (one vocabulary up to the TUI);
- ``player``: the timeline driven into a ring buffer ahead of PortAudio's callback;
- ``tap``: the last frames the callback sent out, for the visualiser to read without locks;
- ``spectrum``: log-frequency FFT bands of those frames, with falling bars and peaks;
- ``silent``: the same timeline driven by a clock when there is no player at all;
- ``output``: finding the output device, rescanning PortAudio's devices;
- ``dispatch``: the event delivery thread.
"""
