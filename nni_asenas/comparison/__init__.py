"""The comparison harness behind ``nni-asenas bench`` and the searches it compares ASE-NAS with."""
