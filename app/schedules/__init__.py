"""Scheduled jobs: cron definitions in scheduled_jobs, fired through rq-scheduler into add_job."""
