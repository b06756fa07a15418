"""Blueprints: admin pages, JSON API, health check."""
