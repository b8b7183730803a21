"""Generated tracks on disk: the track cache, saved tracks and the files ``--render`` writes.

- :mod:`~lofitui.library.cache`: the LRU track cache and saving a cached track to the music folder;
- :mod:`~lofitui.library.files`: readable file names, the sidecar metadata, writing a new track;
- :mod:`~lofitui.library.played`: the tracks played, newest first, kept across sessions.
- :mod:`~lofitui.library.likes`: the listener's likes and dislikes per station;
- :mod:`~lofitui.library.paces`: how much each model slows within a track (the start rule's).
"""

from lofitui.library.cache import CachedTrack, CorruptAudioError, TrackCache, save_track
from lofitui.library.files import slugify, track_metadata, unique_path, write_track
from lofitui.library.played import PlayedTrack, PlayHistory

__all__ = [
    "CachedTrack",
    "CorruptAudioError",
    "PlayHistory",
    "PlayedTrack",
    "TrackCache",
    "save_track",
    "slugify",
    "track_metadata",
    "unique_path",
    "write_track",
]
