"""Type aliases shared by every layer."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["F64", "I64", "Params"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Params = dict[str, Any]
