"""Library shared by threadlog services: events, the event store, the bus, config, ids, errors."""
