"""The demo's mirror serves the files under its roots, also when a root is reached through a
symbolic link (CI lays ``../shared`` beside the project, a developer may link it), and
nothing outside them."""

from __future__ import annotations

from pathlib import Path

import requests

from pipeline.demo.mirror import ReleaseMirror


def test_a_linked_root_serves_its_files_and_nothing_outside(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "green_tripdata_2024-01.parquet").write_bytes(b"PAR1 month PAR1")
    (tmp_path / "secret.txt").write_text("outside the root")
    linked = tmp_path / "linked"
    linked.symlink_to(real, target_is_directory=True)
    release = tmp_path / "release"
    release.mkdir()
    with ReleaseMirror(release, tlc_root=linked) as server:
        month = requests.get(f"{server.parquet_base_url}/green_tripdata_2024-01.parquet",
                             timeout=10)
        outside = requests.get(f"{server.parquet_base_url}/..%2Fsecret.txt", timeout=10)
        dotted = requests.get(f"{server.parquet_base_url}/../../secret.txt", timeout=10)
    assert (month.status_code, month.content) == (200, b"PAR1 month PAR1")
    assert outside.status_code == 403 and b"outside" not in outside.content
    assert dotted.status_code in (403, 404) and b"outside" not in dotted.content
