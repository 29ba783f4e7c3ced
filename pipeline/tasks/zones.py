"""The taxi zone lookup in the lake: ``Zones``."""

from __future__ import annotations

from pipeline import config
from pipeline.core.datasets import ZONES
from pipeline.lake.keys import RAW_PREFIX, zones_key
from pipeline.lake.month_targets import generation
from pipeline.lake.targets import LakeTarget
from pipeline.source.checks import PlainCsvCheck, header_check
from pipeline.source.download import download
from pipeline.source.errors import SourceError
from pipeline.source.policies import download_policy
from pipeline.tasks.base import PipelineTask
from pipeline.tasks.storage import lake


def _zones_header(names: list[str]) -> list[str]:
    expected = ZONES.schema.names
    if [n.casefold() for n in names] != [n.casefold() for n in expected]:
        raise SourceError(f"zones header is {names}, expected {expected}")
    return expected


class Zones(PipelineTask):
    """The taxi zone lookup (265 zones) as published, at ``raw/zones/taxi_zone_lookup.csv``."""

    def output(self) -> LakeTarget:
        return lake().target(zones_key(), listed=RAW_PREFIX)

    def run(self) -> None:
        check = header_check(_zones_header)
        target = self.output()
        seen = target.stat()
        with target.staging() as staged:
            download(
                config.source().zones_url,
                staged.path,
                new_check=lambda: PlainCsvCheck(check),
                label="zones",
                policy=download_policy(config.source()),
            )
            staged.commit(if_generation=generation(seen))
