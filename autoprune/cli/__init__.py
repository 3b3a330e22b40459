"""The ``autoprune`` command line: one module per sub-command, kept thin over the library."""
