"""``labtrack tui``: experiments, runs and metric sparklines in a terminal (Textual), for SSH users."""
