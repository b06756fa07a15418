"""Thin clients for the outside services. Replies are parsed into dataclasses here; errors are
classified transient (worth retrying) or permanent (configuration or data) at this edge."""
