"""/admin/settings (one form per section, Save and Test), GET/PUT /api/admin/settings, and the hook that applies
saved settings to each request without a restart and leads to the first-run setup (app/web/setup.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, abort, current_app, jsonify, redirect, render_template, request, url_for
from flask_login import current_user

from app import settings_rules, settings_store
from app.auth import credentials
from app.auth.guards import api_admin_required, page_admin_required
from app.config import Settings, is_secret, with_stored
from app.errors import AppError
from app.settings_sections import (
    CHOICES,
    PER_INDEXER_FIELDS,
    SECTIONS,
    TestOutcome,
    merge_per_indexer,
    per_indexer_entries,
    run_test,
)
from app.web.errors import json_body

bp = Blueprint("settings", __name__)
# The pages that lead to /admin/setup while the first-run setup is not finished.
SETUP_GUARDED = ("dashboard.", "request_pages.", "system.", "blocklist.", "settings.page", "login.index")


def environment_settings() -> Settings:
    """This app's settings as the environment (or create_app's caller) gave them, without the database's."""
    return current_app.config.setdefault("ENVIRONMENT_SETTINGS", current_app.config["SETTINGS"])


@bp.before_app_request
def _fresh_settings():
    """At most once a second, apply settings saved since (by any process) to this app; then, while the
    first-run setup is not finished, send admin pages to it."""
    if request.endpoint == "static":
        return None
    base = environment_settings()
    settings_store.refresh_settings()
    _apply_snapshot(base)
    credentials.reload_password_hash(current_app, base)
    if (request.method == "GET" and (request.endpoint or "").startswith(SETUP_GUARDED)
            and settings_store.needs_setup(base)):
        return redirect(url_for("setup.setup"))
    return None


def _apply_snapshot(base: Settings) -> None:
    """This app's settings: its environment's, with the stored values this process last read."""
    snap = settings_store.snapshot()
    if current_app.config.get("SETTINGS_VERSION") != snap.version:
        current_app.config["SETTINGS"] = with_stored(base, snap.values)
        current_app.config["SETTINGS_VERSION"] = snap.version


def changed_by() -> str:
    """Who a change is recorded for: the logged-in admin, or the API token."""
    return current_user.get_id() if current_user.is_authenticated else "api-token"


def _described() -> dict[str, dict[str, Any]]:
    snap = settings_store.snapshot()
    return settings_rules.describe(environment_settings(), current_app.config["SETTINGS"], snap.values)


# --- API ----------------------------------------------------------------------------------------------

@bp.get("/api/admin/settings")
@api_admin_required
def api_settings():
    return jsonify(settings=_described())


@bp.put("/api/admin/settings")
@api_admin_required
def api_save_settings():
    """`{"NAME": "value" | number | bool | null}`: null removes the stored value, a blank secret keeps it.
    400 `{errors: {NAME: message}}` or 409 (a name the environment sets): nothing saved."""
    body = json_body()
    if not isinstance(body, dict):
        raise AppError("body must be a JSON object of setting names and values", 400)
    changed = settings_store.save(body, changed_by(), environment_settings())
    _after_save(changed)
    return jsonify(settings=_described(), changed=changed)


def _after_save(changed: list[str]) -> None:
    _apply_snapshot(environment_settings())  # the save refreshed this process: this request shows it
    if any(name.startswith("PLEX_") for name in changed):
        from app.schedules.defaults import ensure_default_schedules

        ensure_default_schedules(current_app.config["SETTINGS"])  # the Plex schedules follow the configuration


# --- the page -----------------------------------------------------------------------------------------

@dataclass
class SectionState:
    """What one section's form shows after a Save or Test: the typed values, errors, the Test's outcome."""

    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    outcome: TestOutcome | None = None
    saved: bool = False


def form_values(section: str) -> dict[str, str]:
    """The section's fields as typed (a checkbox TAG_FILES is `true` when ticked)."""
    names = SECTIONS[section][1]
    values = {name: request.form.get(name, "") for name in names if name in request.form}
    if "TAG_FILES" in names and "TAG_FILES_PRESENT" in request.form:
        values["TAG_FILES"] = "true" if request.form.get("TAG_FILES") else "false"
    for prefix, name in PER_INDEXER_FIELDS.items():
        edits = {key[len(prefix):]: value for key, value in request.form.items() if key.startswith(prefix)}
        if edits and name in names:
            current = values.get(name, settings_store.snapshot().values.get(name, ""))
            values[name] = merge_per_indexer(current, edits)
    return values


def handle_section(section: str, action: str) -> SectionState:
    """Save (all or nothing) or Test (the values as typed, nothing saved) one section's form."""
    base = environment_settings()
    state = SectionState(values=form_values(section))
    editable = {k: v for k, v in state.values.items() if k not in base.environment}
    if action == "save":
        try:
            changed = settings_store.save(editable, changed_by(), base)
        except settings_store.SettingsInvalid as exc:
            state.errors = exc.errors
            return state
        _after_save(changed)
        state.saved = True
        return state
    texts, problems = settings_rules.normalize(editable)
    stored = settings_store.read_stored()
    problems.update(settings_rules.validate(base, stored, texts))
    if problems and section != "paths":  # the paths' Test reports its folders itself
        state.errors = problems
        return state
    after = {**stored, **{k: v for k, v in texts.items() if v is not None and k not in problems}}
    state.outcome = run_test(section, with_stored(base, after))
    return state


def section_context(states: dict[str, SectionState] | None = None) -> dict[str, Any]:
    return {"sections": SECTIONS, "described": _described(), "states": states or {}, "is_secret": is_secret,
            "per_indexer_entries": per_indexer_entries, "choices": CHOICES}


@bp.get("/admin/settings")
@page_admin_required
def page():
    return render_template("admin/settings.html", changes=settings_store.recent_changes(), **section_context())


@bp.post("/admin/settings/<section>")
@page_admin_required
def save_section(section: str):
    if section not in SECTIONS:
        abort(404)
    state = handle_section(section, request.form.get("action", "save"))
    status = 400 if state.errors else 200
    return render_template("admin/settings.html", changes=settings_store.recent_changes(),
                           **section_context({section: state})), status
