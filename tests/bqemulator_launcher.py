"""bqemulator 1.4.0 started offline, for the cloud tests (``tests/fixtures_cloud.py``) and
the benchmarks (``bench/history_sinks.py``): ``python tests/bqemulator_launcher.py start
--rest-port P --grpc-port G --project test``, with ``BQEMU_ENABLE_FORMAT_EXTENSIONS=false``.

bqemulator downloads DuckDB's spatial extension when it starts, which fails offline; its
loader is a private name, hence the exact pin (bqemulator==1.4.0 in setup.cfg)."""

import sys


def main() -> None:
    import bqemulator.storage.engine as engine

    engine.DuckDBEngine._load_spatial = lambda self: None
    from bqemulator.cli import main as bqemulator_main

    sys.argv[0] = "bqemulator"
    bqemulator_main()


if __name__ == "__main__":
    # Run by path: tests/ is sys.path[0], and its packages (lake, core, ...) must not
    # shadow what bqemulator imports.
    del sys.path[0]
    main()
