"""Arrow's allocator settings, applied before pyarrow is first imported.

pyarrow allocates through mimalloc. A streaming conversion frees a row group several times
a second and allocates the next one at once, so freed pages are worth keeping for a moment:
with ``MIMALLOC_PURGE_DELAY`` at 0 they went back to the OS at once and every row group
faulted its memory in again (a 10M-row month: 490-580 thousand page faults and 2.4-5.2 s
of system time). Kept for a second, the same month takes 110-140 thousand faults and
0.9-1.4 s, for ~40 MB more peak RSS (300 MB). These options take effect only if pyarrow is
not loaded yet, and a value set in the environment by the user wins.
"""

import os

os.environ.setdefault("MIMALLOC_PURGE_DELAY", "1000")
os.environ.setdefault("MIMALLOC_ARENA_EAGER_COMMIT", "0")
