"""threadlog: the developer entry points (the `threadlog` command, embedded servers)."""
