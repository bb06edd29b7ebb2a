"""`python -m app`: the `spine` command."""

from app.cli import main

main(prog_name="spine")
