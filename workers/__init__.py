"""What runs only in worker processes: the job runner, processors, worker classes and the pool."""
