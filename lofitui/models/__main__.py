"""``python -m lofitui.models ...`` runs ``lofi models ...`` (handy without the entry point)."""

import sys

from lofitui.models.commands import main

raise SystemExit(main(sys.argv[1:]))
