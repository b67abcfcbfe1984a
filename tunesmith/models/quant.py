"""A quantized frozen base for LoRA (QLoRA 4-bit nf4/fp4, or 8-bit) through bitsandbytes.

Why bitsandbytes alone: measured while choosing a library, torchao's int4 weight-only layouts
fail on CPU in every packing format, and optimum-quanto's int4 trains but generates garbage.
bitsandbytes (>= 0.48 has real CPU kernels) is also what transformers' BitsAndBytesConfig and
peft's LoRA layers are built around, so adapters trained on it load onto a plain base.

The one trap this module exists for (bitsandbytes 0.50, CPU with AVX512-BF16): the first
forward of a `Linear4bit` in eval mode without grad (a generation before training, or the
Trainer's evaluation) repacks its weight into an inference-only layout (`packing_format_for_cpu`,
bf16 absmax). From then on every forward goes through `gemv_4bit`, which has no autograd formula,
so no gradient flows back through the frozen base to earlier layers: their LoRA weights silently
learn from a wrong gradient (QLoRA loss 3.15 -> 11.4 measured; LoRA gradients of the tiny test
model's first layer 22-69% off). `keep_training_layout` turns the
repack off per module; gradients then match a dequantized reference.
"""

from __future__ import annotations

import logging

from tunesmith.errors import fail

MIN_BITSANDBYTES = (0, 48)  # the first release with CPU kernels for 4-bit and 8-bit
FOUR_BIT = ("nf4", "fp4")


class _DropMessage(logging.Filter):
    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in str(record.msg)


# An optional hub-downloaded kernel for the CPU inference layout, which keep_training_layout
# switches off; its "pip install kernels" advice would only confuse.
_NO_KERNELS_HINT = _DropMessage("kernels-community")
# LLM.int8() quantizes activations through fp16 in every eval-mode 8-bit matmul, by design;
# logged once per layer per step it buries the progress output.
_NO_FP16_CAST_NOTE = _DropMessage("will be cast from")


def quiet_bitsandbytes() -> None:
    """Drop two bitsandbytes log lines about paths tunesmith does not take. Installed on the named
    loggers before the first `import bitsandbytes`, since the first fires at import; adding the
    same filter object twice is a no-op, so calling this again is harmless."""
    logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(_NO_KERNELS_HINT)
    logging.getLogger("bitsandbytes.autograd._functions").addFilter(_NO_FP16_CAST_NOTE)


def device_map() -> dict:
    """Everything on one device: the first GPU when there is one, else the CPU."""
    import torch

    return {"": torch.cuda.current_device()} if torch.cuda.is_available() else {"": "cpu"}


def bnb_config(quantization: str, compute_dtype: str):
    """transformers' BitsAndBytesConfig for `model.quantization`. 4-bit layers compute in
    `compute_dtype` (what the base would otherwise be stored in: bf16 under bf16 training); 8-bit
    layers dequantize to their input's dtype when training (MatMul8bitFp) and take no setting.
    Double quantization stays off: it saves ~0.37 bit per weight (~5 MB on a 135M model) and costs
    a second dequantization in every forward."""
    import torch
    from transformers import BitsAndBytesConfig

    quiet_bitsandbytes()
    if quantization == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=quantization,
                              bnb_4bit_compute_dtype=getattr(torch, compute_dtype),
                              bnb_4bit_use_double_quant=False)


def keep_training_layout(model) -> int:
    """Stop every 4-bit layer from repacking itself into bitsandbytes' CPU inference layout (see
    the module docstring); returns how many layers were set. The attribute is read in
    `Linear4bit.forward` (bitsandbytes/nn/modules.py) and only matters on CPU. 8-bit layers need
    nothing: in train mode they dequantize and matmul (MatMul8bitFp, correct input gradients) and
    in eval mode they run LLM.int8() without changing the stored weight."""
    import bitsandbytes as bnb

    n = 0
    for module in model.modules():
        # hasattr: a bitsandbytes without the attribute has no such repack to switch off
        # (preflight's layer check would catch a renamed one: its input gradient goes wrong).
        if isinstance(module, bnb.nn.Linear4bit) and hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
            n += 1
    return n


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def preflight(quantization: str) -> dict:
    """Check, at validation time, that the `quantization` path works on this machine: bitsandbytes
    importable and recent enough, a backend for this device, and one quantized layer whose forward
    and input gradient match its dequantized weight. Returns what was found, for the report."""
    field = "model.quantization"
    fix_install = "pip install 'bitsandbytes>=0.48' (CPU kernels need 0.48+), or set model.quantization=none"
    quiet_bitsandbytes()
    try:
        import bitsandbytes as bnb
    except Exception as e:  # ImportError, or a broken native library raising at import
        raise fail(f"{quantization} needs bitsandbytes, which cannot be imported here ({type(e).__name__}: {e})",
                   fix_install, field=field) from e
    import torch

    version = getattr(bnb, "__version__", "0")
    if _version_tuple(version) < MIN_BITSANDBYTES:
        raise fail(f"{quantization} needs bitsandbytes >= 0.48, found {version}", fix_install, field=field)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in getattr(bnb, "supported_torch_devices", ()):
        raise fail(f"bitsandbytes {version} has no backend for this machine's device ({device})", fix_install,
                   field=field)
    from bitsandbytes.cextension import ErrorHandlerMockBNBNativeLibrary, lib

    if isinstance(lib, ErrorHandlerMockBNBNativeLibrary):  # the .so failed to load; bnb defers the error
        raise fail(f"bitsandbytes {version} is installed but its native library did not load: "
                   f"{lib.error_msg.strip().splitlines()[0] if lib.error_msg else 'unknown reason'}",
                   "reinstall bitsandbytes for this platform (pip install --force-reinstall bitsandbytes), "
                   "or set model.quantization=none", field=field)
    try:
        check = _layer_check(quantization, device)
    except Exception as e:
        raise fail(f"a {quantization} layer failed to run on {device} with bitsandbytes {version} "
                   f"({type(e).__name__}: {e})", "set model.quantization=none, or try another bitsandbytes "
                   "version", field=field) from e
    # Everything but CUDA's int8 forward dequantizes and multiplies in float: rounding-level error
    # (0 to 3e-8 measured on CPU). CUDA's LLM.int8() also quantizes the activations, ~1% off.
    tolerance = 5e-2 if quantization == "int8" and device == "cuda" else 1e-3
    worst = max(check["forward_rel_err"], check["grad_rel_err"])
    if not worst < tolerance:  # not-less also catches NaN
        raise fail(f"a {quantization} layer on {device} gives wrong numbers with bitsandbytes {version} "
                   f"(forward error {check['forward_rel_err']:.2g}, input-gradient error "
                   f"{check['grad_rel_err']:.2g} against its own dequantized weight)",
                   "set model.quantization=none, or try another bitsandbytes version", field=field)
    from bitsandbytes.functional import has_avx512bf16

    # True where unguarded 4-bit training would break here (see the module docstring).
    repack_guard = device == "cpu" and quantization in FOUR_BIT and bool(has_avx512bf16())
    return {"backend": "bitsandbytes", "version": version, "device": device, "quantization": quantization,
            "cpu_repack_guard": repack_guard, "tolerance": tolerance, **check}


def _layer_check(quantization: str, device: str) -> dict:
    """Quantize one nn.Linear, run an eval no-grad forward (the step that breaks 4-bit training
    on CPU when unguarded), then a training forward and backward; compare the output and the
    input's gradient with x @ W_deq.T computed in plain torch from the layer's own dequantized
    weight. Both should agree to float rounding, since bitsandbytes dequantizes the same way."""
    import bitsandbytes as bnb
    import bitsandbytes.functional as F
    import torch

    gen = torch.Generator().manual_seed(0)
    dense = torch.nn.Linear(128, 64, bias=False)
    with torch.no_grad():
        dense.weight.copy_(torch.randn(64, 128, generator=gen) * 0.05)
    if quantization == "int8":
        layer = bnb.nn.Linear8bitLt(128, 64, bias=False, has_fp16_weights=False, threshold=6.0)
    else:
        layer = bnb.nn.Linear4bit(128, 64, bias=False, compute_dtype=torch.float32, quant_type=quantization,
                                  compress_statistics=False)
    layer.load_state_dict(dense.state_dict())
    layer = layer.to(device)  # quantization happens on this move
    keep_training_layout(layer)
    x = torch.randn(3, 5, 128, generator=gen).to(device)
    layer.eval()
    with torch.no_grad():
        layer(x)
    layer.train()
    x = x.clone().requires_grad_(True)
    out = layer(x)
    grad_out = torch.randn(out.shape, generator=gen).to(device)
    out.backward(grad_out)
    if quantization == "int8":
        w = layer.state.CB.float() * (layer.state.SCB.float().unsqueeze(1) / 127.0)  # set by the first forward
    else:
        w = F.dequantize_4bit(layer.weight.data, layer.weight.quant_state).float()
    ref_out = x.detach() @ w.T
    ref_grad = grad_out @ w

    def rel(a, b):
        if a is None:  # no gradient reached the input at all
            return float("inf")
        return float((a.detach().float() - b.float()).norm() / b.float().norm().clamp_min(1e-12))

    return {"forward_rel_err": round(rel(out, ref_out), 8), "grad_rel_err": round(rel(x.grad, ref_grad), 8)}

