"""Evidence: capture manifests, content-addressed bytes, chain of custody, plausibility and fixity."""
