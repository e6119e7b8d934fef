"""Constants a demo job uses: the payload from the conditions, or NOMINAL when it is absent."""

from __future__ import annotations

import numpy as np

from b2cal_assets.caf.framework import Conditions
from b2cal_assets.demo.truth import Constants, nominal


def constants(conditions: Conditions, payload: str) -> Constants:
    """The constants of ``payload``: from the conditions when present (an upstream calibration or the
    previous iteration), otherwise the base global tag's NOMINAL values (excluded upstream)."""
    if payload in conditions:
        return {key: np.asarray(value) for key, value in conditions.get(payload).items()}
    return nominal(payload)


def scalar(values: Constants, key: str) -> float:
    return float(np.asarray(values[key]).reshape(-1)[0])
