"""Settings for the tests, taken from the committed `params.yaml`: the schema holds no defaults
(every value lives in that file), so a test states only what it changes."""

from functools import cache
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel

from pipeline.core import config
from tests.support.project import ROOT

SECTIONS: dict[type[BaseModel], str] = {
    config.DownloadParams: "download",
    config.CleanParams: "clean",
    config.ValidateParams: "validate",
    config.EncodeParams: "encode",
    config.BaselineParams: "baseline",
    config.TrainParams: "train",
    config.EvaluateParams: "evaluate",
    config.MlflowParams: "mlflow",
}
Section = TypeVar("Section", bound=BaseModel)


@cache
def committed_raw() -> dict[str, Any]:
    """The committed params.yaml as plain data."""
    return yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))


def committed(section: type[Section], **overrides: Any) -> Section:
    """The committed values of one params section, with `overrides`, checked by the schema."""
    return section.model_validate(committed_raw()[SECTIONS[section]] | overrides)
