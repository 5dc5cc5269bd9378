"""threadlog services: each subpackage is one process."""
