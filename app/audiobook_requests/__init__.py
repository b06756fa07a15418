"""Audiobook requests: the status machine (one writer) and the operations behind the requests API."""
