"""Loads the compiled operators. This is the local build's version; kernel-builder writes its own
_ops.py (importing the extension and naming the build's unique op namespace) when it builds the
package for the kernels hub, so the rest of the package only uses `ops` and `add_op_namespace_prefix`."""

import os

import torch

_LIBRARY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_afq_torch_ops.so")
if not os.path.exists(_LIBRARY):
    raise ImportError(
        f"afq_torch: {_LIBRARY} is missing; build it with "
        "`cmake -S torch-ext -B build-torch && cmake --build build-torch` and put build-torch/python on PYTHONPATH"
    )
torch.ops.load_library(_LIBRARY)

ops = torch.ops.afq


def add_op_namespace_prefix(op_name: str) -> str:
    """The qualified name of one of this package's operators ("afq::affine_qmm_t")."""
    return f"afq::{op_name}"
