"""Typed settings, read once from the environment (and a `.env` file).

Every problem found is collected and raised together in one `SettingsError`, so a
misconfigured deployment fails loudly at start with the full list, not at the first job.

- `parsers.py`: a parser per kind of value (bool, URL, host, per-indexer limits, …);
- `settings.py`: the `Settings` dataclass (variable, default, parser, secrecy of each) and the names an admin
  may change in the browser (`ADMIN_SETTING_NAMES`);
- `loading.py`: `load_settings` (environment over `.env`, `WORKERS_<GROUP>` for every declared worker group
  of app/jobs/types.py), the rules across settings and the start's warnings;
- `current.py`: the settings in force in this process (`get_settings`), the database's values applied over
  them, and a running job's own copy (`bound_settings`).
"""
from app.config.current import (
    base_settings,
    bound_settings,
    get_settings,
    set_settings,
    stored_version,
    use_stored,
    with_stored,
)
from app.config.loading import (
    SettingsError,
    combination_problems,
    load_settings,
    parse_values,
    settings_warnings,
)
from app.config.settings import ADMIN_SETTING_NAMES, WILDCARD_HOSTS, Settings, is_secret, setting_field

__all__ = [
    "ADMIN_SETTING_NAMES", "WILDCARD_HOSTS", "Settings", "SettingsError", "base_settings", "bound_settings",
    "combination_problems", "get_settings", "is_secret", "load_settings", "parse_values", "set_settings",
    "setting_field", "settings_warnings", "stored_version", "use_stored", "with_stored",
]
