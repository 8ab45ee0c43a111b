"""Layer `run`: jobs, the ordered commit, the in-process and Ray executors, backfill, dry run, progress, report."""
