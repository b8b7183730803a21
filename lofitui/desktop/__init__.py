"""Desktop integration: lofi as a media player of the desktop (MPRIS on Linux's session D-Bus)."""
