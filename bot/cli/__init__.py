"""The `capret` command line: the entry point (`main.py`) and one module per sub-command."""
