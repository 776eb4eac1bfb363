"""Search spaces shipped with nni-asenas. Each lives in its own module; nothing heavy is imported here."""
