"""Arrow's allocator settings, applied before pyarrow is first imported.

pyarrow allocates through mimalloc, which by default keeps freed pages for a while and
commits whole arenas eagerly. For a streaming conversion that frees a row group a second,
that retention shows up as ~100 MB of extra resident memory. These options make freed
memory go back to the OS at once; they take effect only if pyarrow is not loaded yet, and
a value set in the environment by the user wins.
"""

import os

os.environ.setdefault("MIMALLOC_PURGE_DELAY", "0")
os.environ.setdefault("MIMALLOC_ARENA_EAGER_COMMIT", "0")
