"""Read models: what the admin pages, the JSON API, /healthz and /metrics show (the logs query, queue
statistics, live workers). They read; the services in app/jobs, app/audiobook_requests and app/schedules write."""
