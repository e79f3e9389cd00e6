"""Logs one point, then sleeps: for time limits and cancellation."""
import sys
import time

import labtrack as lt

with lt.start_run():
    lt.log_metric("alive", 1.0, step=0)
    lt.flush()
    time.sleep(int(sys.argv[1]))
