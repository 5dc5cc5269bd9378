"""The run-worker: consumes run events, calls the model, appends the run's progress."""
