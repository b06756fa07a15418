"""Read models for the admin dashboard: logs query, queue statistics, metrics."""
