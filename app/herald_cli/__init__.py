"""herald_cli: report a deploy to Herald from any pipeline. Standard library only, so it runs on any
CI host with Python 3.8+; copy this folder or `python -m herald_cli` from a Herald checkout."""
