"""One package per domain, each with the same file names (models, schemas, operations, api, tasks, cli)."""
