"""The building blocks of every config section (`phf.config.schema`) and of each objective's settings, which live
beside the objective (`phf.objectives`): the pydantic base class, thresholds, the run-only mark, the error."""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

from phf.errors import PHFError

PERCENTILE = re.compile(r"^p(100|\d{1,2}(\.\d+)?)$")


class ConfigError(PHFError):
    """A configuration problem, phrased for the user."""


# Marks a field that changes how a run goes (threads, logging, checkpoints), not the model it trains: it may
# differ when a run resumes, and arms of an experiment that differ only in such fields train the same model.
RUN_ONLY = {"run_only": True}


class Section(BaseModel):
    # A NaN threshold would tag every segment aligned, an infinite learning rate would train NaN: refused.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    def deciding(self) -> dict:
        """The settings that decide what a run makes (a model, a scored corpus, an evaluation): every field but
        those marked RUN_ONLY."""
        run_only = {name for name, f in type(self).model_fields.items() if (f.json_schema_extra or {}).get("run_only")}
        return self.model_dump(exclude=run_only)


def _number_or_percentile(v):
    if isinstance(v, str) and not PERCENTILE.match(v):
        try:
            v = float(v)
        except ValueError:
            raise ValueError(f"expected a number or a percentile like 'p95', got {v!r}") from None
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError(f"expected a finite number or a percentile like 'p95', got {v!r}")
    return v


Threshold = Annotated[float | str, AfterValidator(_number_or_percentile)]
THRESHOLD = "A segment is aligned iff score <= threshold. A number, or 'pNN' = NN-th percentile of segment scores."
