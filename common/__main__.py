"""``python -m paragon_licensed`` runs the same entry point as the console script."""

from paragon_licensed.cli import main

main()
