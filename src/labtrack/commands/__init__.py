"""Command groups of the ``labtrack`` CLI, one module per capability.

Each module defines a click command or group; ``labtrack.cli`` adds it to the
top-level group with one ``main.add_command`` line.  Heavy imports stay inside
the commands' functions so that ``labtrack --help`` starts fast.
"""
