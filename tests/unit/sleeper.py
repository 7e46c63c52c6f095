"""`python -m tests.unit.sleeper`: a child process that only waits, for process-lifetime tests."""

import time

if __name__ == "__main__":
    time.sleep(120)
