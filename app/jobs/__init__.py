"""The job system: types, queues, the job service (the only writer of job state), callbacks, JobLogger."""
