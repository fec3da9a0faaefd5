"""``python -m kllab``: the ``kllab`` command (see :mod:`kllab.harness.cli`)."""

import sys

from kllab.harness.cli import main

sys.exit(main())
