"""sanadctl: the command-line client of the registry, intake and metrics services."""
