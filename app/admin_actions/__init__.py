"""An admin's actions that span the job system and the requests: above both (tests/architecture/test_layers.py)."""
