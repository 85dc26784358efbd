"""``python -m emingest.cli``: the same as the ``emingest`` command."""

from emingest.cli import main

main()
