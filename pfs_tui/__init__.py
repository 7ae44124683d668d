"""pfs terminal explorer (Textual): `pfs tui` or `python -m pfs_tui`; importing it loads no UI."""
