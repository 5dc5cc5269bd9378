"""Fault injection under load (make test-faults): each fault on a stack with servers of its own."""
