"""Notifications: targets (Apprise URLs), the events that queue send_notification jobs, what watches for them."""
