"""The media library: path rules, file organizing, Plex library matching."""
