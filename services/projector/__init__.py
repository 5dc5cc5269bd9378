"""The projector: follows the log and maintains the read models, checkpoint in the same transaction."""
