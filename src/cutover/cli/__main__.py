"""`python -m cutover.cli`: the same as the `cutover` command."""

from . import main

main()
