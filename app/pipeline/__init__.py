"""Pure decisions of the acquisition pipeline (no I/O): state maps, ranking, polling policy, transitions."""
