"""``python -m nni_asenas.cli``: the ``nni-asenas`` command."""

import sys

from nni_asenas.cli.app import main

sys.exit(main())
