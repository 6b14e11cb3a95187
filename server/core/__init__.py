"""Shared machinery that no domain owns: database base, errors, auth, storage, tasks, calendar."""
