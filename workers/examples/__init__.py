"""Demo services used by ``genapi dev`` and the README."""
