"""`tensor(a)`: ``open3d.core.Tensor(a)`` (a copy of a numpy array), typed.

The stubs bundled with open3d 0.20 declare only the overloads that also take ``dtype``
and ``device``, so the plain one-argument call (dtype from the array, CPU) fails type
checking although it is the documented use. This calls exactly that constructor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import open3d as o3d


def tensor(a: np.ndarray) -> o3d.core.Tensor:
    """``open3d.core.Tensor(a)``: a copy of `a`, same shape and dtype, on the CPU."""
    import open3d

    make: Any = open3d.core.Tensor  # see the module docstring: the stubs lack this overload
    return make(a)
