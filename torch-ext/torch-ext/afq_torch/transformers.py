"""transformers integration: MetalConfig models stay quantized on NVIDIA GPUs and CPUs.

transformers' Metal quantization (quantizers/quantizer_metal.py, integrations/metal_quantization.py)
calls one kernel, `affine_qmm_t(x, weight, scales, qbiases, group_size, bits)`, loaded from the
kernels hub for Apple GPUs only; elsewhere it refuses to quantize on the fly and dequantizes
pre-quantized checkpoints to float. transformers has no public hook for another kernel, so
`enable_transformers()` changes these few points of transformers 5.17 (undone by
`disable_transformers()`):

1. `metal_quantization._get_metal_kernel` returns this module, whose `affine_qmm_t` is afq's
   operator: MetalLinear.forward itself is unchanged.
2. `MetalHfQuantizer.validate_environment` accepts CUDA (compute capability 8.0+) and CPU device
   maps instead of requiring MPS, so pre-quantized checkpoints are no longer dequantized.
3. `MetalHfQuantizer.update_device_map`: no device_map means the CPU, not "mps".
4. `MetalHfQuantizer.get_quantize_ops`: quantizing on the fly goes through afq's affine_quantize
   ("minmax", the default, gives transformers' own MetalQuantize result bit for bit; "mlx" gives
   MLX's). afq quantizes on the CPU: a weight loaded to CUDA is copied to the host and back.
5. `MetalHfQuantizer._process_model_after_weight_loading` keeps scales and qbiases in the
   activation dtype where that loses nothing (MetalLinear casts them to the input's dtype on every
   call), and `is_compileable` is True (the operators have fake implementations), so generate()
   compiles static-cache decoding as it does for unquantized models.
"""

import sys
import warnings

import torch

from ._ops import add_op_namespace_prefix, ops

TESTED_TRANSFORMERS = "5.17"
QUANTIZE_METHODS = ("minmax", "mlx")

_MISSING = object()
_saved = {}  # (owner, attribute name) -> the original attribute (or _MISSING), while enabled
_settings = {"quantize_method": "minmax"}


# --- the kernel object MetalLinear calls ---------------------------------------------------------


def affine_qmm_t(x, weight, scales, qbiases, group_size, bits):
    """y = x @ dequant(weight)^T, as transformers 5.17's MetalLinear calls it."""
    return ops.affine_qmm_t(x, weight, scales, qbiases, group_size, bits)


def quantized_matmul(x, weight, scales, biases, transpose=True, group_size=64, bits=4):
    """MLX's quantized_matmul signature (the call later transformers releases make)."""
    if not transpose:
        raise NotImplementedError("afq_torch: quantized_matmul(transpose=False) is not supported")
    return ops.affine_qmm_t(x, weight, scales, biases, group_size, bits)


_KERNEL = sys.modules[__name__]  # a module global, so torch.compile reads it as a constant


def _get_afq_kernel():
    return _KERNEL


# --- checks --------------------------------------------------------------------------------------


def _installed_transformers_version():
    """The installed transformers' version (a function of its own so that tests can pretend another)."""
    import transformers

    return transformers.__version__


def _transformers_parts(allow_untested_version):
    """(metal_quantization module, MetalHfQuantizer) of the installed transformers, checked."""
    try:
        import transformers
        from transformers.integrations import metal_quantization
        from transformers.quantizers.quantizer_metal import MetalHfQuantizer
    except ImportError as e:
        raise ImportError(
            f"afq_torch.enable_transformers() needs transformers {TESTED_TRANSFORMERS}.x with its Metal "
            f"quantization (MetalConfig): {e}"
        ) from e
    version = _installed_transformers_version()
    if version.split(".")[:2] != TESTED_TRANSFORMERS.split("."):
        message = (
            f"afq_torch.enable_transformers() is tested with transformers {TESTED_TRANSFORMERS}.x only, and "
            f"transformers {version} is installed. It changes internals of transformers' Metal quantization "
            "(quantizers/quantizer_metal.py, integrations/metal_quantization.py) that differ between releases. "
            f"Install transformers=={TESTED_TRANSFORMERS}.* or pass allow_untested_version=True to try anyway."
        )
        if not allow_untested_version:
            raise RuntimeError(message)
        warnings.warn(message, stacklevel=3)
    needed = [
        (metal_quantization, "_get_metal_kernel"),
        (metal_quantization, "MetalLinear"),
        (metal_quantization, "MetalQuantize"),
        (MetalHfQuantizer, "validate_environment"),
        (MetalHfQuantizer, "update_device_map"),
        (MetalHfQuantizer, "get_quantize_ops"),
    ]
    missing = [name for owner, name in needed if not hasattr(owner, name)]
    if missing:
        raise RuntimeError(
            f"afq_torch.enable_transformers(): transformers {version} has no {', '.join(missing)} in its Metal "
            f"quantization; afq_torch supports transformers {TESTED_TRANSFORMERS}.x"
        )
    return metal_quantization, MetalHfQuantizer


def _has_cuda_ops():
    return torch._C._dispatch_has_kernel_for_dispatch_key(add_op_namespace_prefix("affine_qmm_t"), "CUDA")


_ACCELERATE_PLACEMENTS = ("auto", "balanced", "balanced_low_0", "sequential")


def _check_device(device):
    """Raises unless afq can run a MetalConfig model on `device` (a device_map value)."""
    if isinstance(device, str) and device in _ACCELERATE_PLACEMENTS:
        return  # accelerate spreads the model over CUDA and the CPU, both fine (disk is not)
    if isinstance(device, str) and device == "disk":
        raise ValueError(
            "afq_torch: a MetalConfig model cannot be offloaded to disk (device_map has 'disk'); "
            "place it on CUDA devices and the CPU"
        )
    if isinstance(device, int):
        device = torch.device("cuda", device)
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"afq_torch: device_map names {device!r}, which is not a device: {e}") from e
    if device.type == "cpu":
        return
    if device.type != "cuda":
        raise ValueError(
            f"afq_torch runs MetalConfig models on CUDA and CPU; device_map names {str(device)!r}"
        )
    if not torch.cuda.is_available():
        raise RuntimeError(f"afq_torch: device_map names {str(device)!r} but CUDA is not available")
    if not _has_cuda_ops():
        raise RuntimeError("afq_torch was built without its CUDA operators (no nvcc at build time); use the CPU")
    capability = torch.cuda.get_device_capability(device)
    if capability < (8, 0):
        raise RuntimeError(
            f"afq's CUDA kernels need compute capability 8.0 or newer (Ampere, Hopper); "
            f"{torch.cuda.get_device_name(device)} has {capability[0]}.{capability[1]}"
        )


def _device_map_values(device_map):
    if device_map is None:
        return ["cpu"]
    if isinstance(device_map, dict):
        return list(device_map.values())
    return [device_map]


# --- the replacements ----------------------------------------------------------------------------


def _validate_environment(self, *args, **kwargs):
    if self.quantization_config.dequantize:
        return  # the user asked for float weights: transformers' own path
    for device in _device_map_values(kwargs.get("device_map")):
        _check_device(device)


def _update_device_map(self, device_map):
    return {"": "cpu"} if device_map is None else device_map


def _make_quantize_op(metal_quantization):
    class AfqMetalQuantize(metal_quantization.MetalQuantize):
        """MetalQuantize through afq's affine_quantize: the same tensors, under the same names."""

        def convert(self, input_dict, **kwargs):
            target_key, value = next(iter(input_dict.items()))
            value = value[0] if isinstance(value, list) else value
            config = self.hf_quantizer.quantization_config
            words, scales, qbiases = ops.affine_quantize(
                value, config.group_size, config.bits, _settings["quantize_method"]
            )
            base = target_key.rsplit(".", 1)[0] if "." in target_key else ""
            prefix = f"{base}." if base else ""
            return {target_key: words, f"{prefix}scales": scales, f"{prefix}qbiases": qbiases}

    return AfqMetalQuantize


def _activation_dtype(model):
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    weight = getattr(embeddings, "weight", None)
    if weight is not None and weight.is_floating_point():
        return weight.dtype
    return getattr(model, "dtype", None)


def _keep_scales_in_activation_dtype(model, metal_linear):
    """Casts scales and qbiases to the activation dtype where the values survive the cast exactly."""
    dtype = _activation_dtype(model)
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        return
    for module in model.modules():
        if not isinstance(module, metal_linear) or module.weight.dtype not in (torch.uint32, torch.int32):
            continue
        pairs = [(name, getattr(module, name)) for name in ("scales", "qbiases")]
        if any(t.dtype == dtype or not t.is_floating_point() for _, t in pairs):
            continue
        converted = [t.detach().to(dtype) for _, t in pairs]
        if all(torch.equal(c.to(t.dtype), t.detach()) for c, (_, t) in zip(converted, pairs)):
            for (name, _), c in zip(pairs, converted):
                setattr(module, name, torch.nn.Parameter(c, requires_grad=False))


def _make_after_loading(metal_linear, original):
    def _process_model_after_weight_loading(self, model, **kwargs):
        result = original(self, model, **kwargs)
        if not self.quantization_config.dequantize:
            _keep_scales_in_activation_dtype(model, metal_linear)
        return result

    return _process_model_after_weight_loading


# --- enable / disable ----------------------------------------------------------------------------


def _patch(owner, name, value):
    if (owner, name) not in _saved:
        _saved[(owner, name)] = owner.__dict__.get(name, _MISSING)
    setattr(owner, name, value)


def enable_transformers(quantize_method="minmax", allow_untested_version=False):
    """Makes transformers' MetalConfig path run on afq's kernels on CUDA and CPU.

    After it, `AutoModelForCausalLM.from_pretrained(path, quantization_config=MetalConfig(bits=4,
    group_size=64), device_map="cuda")` quantizes on the fly and keeps the weights quantized, and a
    pre-quantized MetalConfig checkpoint (transformers' own or `afq quantize --layout transformers`)
    loads quantized instead of dequantized. `MetalConfig(dequantize=True)` still asks for float.

    quantize_method: "minmax" (transformers' MetalQuantize rule, bit for bit) or "mlx" (MLX's).
    allow_untested_version: try a transformers other than 5.17.x (with a warning) instead of failing.
    Returns True when the patch is in place, False on a machine with an Apple GPU, where
    transformers' own Metal kernels are used.
    """
    if quantize_method not in QUANTIZE_METHODS:
        raise ValueError(f"afq_torch: quantize_method must be one of {QUANTIZE_METHODS}, got {quantize_method!r}")
    metal_quantization, quantizer = _transformers_parts(allow_untested_version)
    if torch.backends.mps.is_available():
        warnings.warn("afq_torch: an Apple GPU is present; transformers' own Metal kernels stay in use", stacklevel=2)
        return False
    _settings["quantize_method"] = quantize_method
    if _saved:
        return True  # already enabled; only the quantize method changed
    quantize_op = _make_quantize_op(metal_quantization)
    _patch(metal_quantization, "_get_metal_kernel", _get_afq_kernel)
    _patch(quantizer, "validate_environment", _validate_environment)
    _patch(quantizer, "update_device_map", _update_device_map)
    _patch(quantizer, "get_quantize_ops", lambda self: quantize_op(self))
    _patch(quantizer, "is_compileable", property(lambda self: True))
    original_after = getattr(quantizer, "_process_model_after_weight_loading", None)
    if original_after is not None:  # without it, MetalLinear casts the scales on each call (correct, slower)
        after_loading = _make_after_loading(metal_quantization.MetalLinear, original_after)
        _patch(quantizer, "_process_model_after_weight_loading", after_loading)
    return True


def disable_transformers():
    """Puts back everything enable_transformers() changed (transformers' behaviour again)."""
    for (owner, name), original in reversed(list(_saved.items())):
        if original is _MISSING:
            delattr(owner, name)
        else:
            setattr(owner, name, original)
    _saved.clear()


def is_enabled():
    return bool(_saved)
