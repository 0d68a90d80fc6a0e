"""Checkpoints are untrusted input: any Hub repo can be opened, so config.json and
model.safetensors are checked before they cost memory or reach a sampler.

The order matters, each step bounding what the next may cost:

    read_json          config.json: size cap, UTF-8, JSON object
    read_header        model.safetensors header only: names, dtypes, shapes (no tensor data)
    check_config       config fields in range, the bounds taken from the header's own sizes
                       (a width no larger than the largest tensor dimension, a depth no larger
                       than the number of tensors) plus absolute caps for sizes the weights do
                       not fix (image sizes); the net's Config may declare them in LIMITS
    build_on_meta      the architecture on torch.device("meta"): shapes without memory
    load_validated_weights
                       names, shapes and dtypes against that module, then the data: the
                       checksum the zoo wrote (when present) and finite values

Every refusal is a CheckpointError (a ValueError, so the UI shows it) naming the file, the
tensor or field, what was expected and what was found.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch.overrides import TorchFunctionMode

MAX_CONFIG_BYTES = 1 << 20  # ours are a few kB; megabytes are an attack or a mistake
MAX_HEADER_BYTES = 16 << 20  # about 100 bytes per tensor: room for 100,000 tensors
CHECKSUM_KEY = "zoo.sha256"  # safetensors metadata entry written by save_checkpoint
# safetensors dtype names; only the floating ones may hold weights
FLOAT_DTYPES = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32, "F64": torch.float64}
DTYPE_NAMES = {**{v: k for k, v in FLOAT_DTYPES.items()}, torch.int64: "I64", torch.int32: "I32",
               torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL"}


class CheckpointError(ValueError):
    """A checkpoint file that cannot be trusted: which file, which tensor or field, what
    was expected and what was found."""

    def __init__(self, file, item: str, expected: str, found: str):
        self.file, self.item, self.expected, self.found = str(file), item, expected, found
        super().__init__(f"{file}: {item}: expected {expected}, found {found}")

    def __reduce__(self):  # picklable across processes despite the four-argument constructor
        return type(self), (self.file, self.item, self.expected, self.found)


def read_json(path, max_bytes: int = MAX_CONFIG_BYTES) -> dict:
    """A JSON object from `path`, refused (size first, before reading) unless it is at most
    max_bytes of UTF-8 JSON with an object at the top."""
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise CheckpointError(path, "file size", f"at most {max_bytes:,} bytes", f"{size:,} bytes")
    raw = path.read_bytes()
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise CheckpointError(path, f"byte {err.start}", "UTF-8 text", f"byte 0x{raw[err.start]:02x}") from err
    except json.JSONDecodeError as err:
        raise CheckpointError(path, f"line {err.lineno} column {err.colno}", "JSON", err.msg) from err
    except RecursionError as err:  # [[[[... nested deeper than the parser's stack
        raise CheckpointError(path, "nesting", "JSON nested a few levels deep", "deeper nesting") from err
    if not isinstance(value, dict):
        raise CheckpointError(path, "top level", "a JSON object", type(value).__name__)
    return value


@dataclass
class Header:
    """What a safetensors file declares, read without its tensor data."""

    path: Path
    tensors: dict  # name -> (dtype name such as "F32", shape tuple)
    metadata: dict

    @property
    def largest_dim(self) -> int:
        """The largest dimension of a tensor with data: a (10**9, 0) tensor costs no bytes,
        so it may not widen what the config is allowed to ask for."""
        return max((max(shape) for _, shape in self.tensors.values() if shape and math.prod(shape)), default=0)


def read_header(path) -> Header:
    """Names, dtypes, shapes and metadata of a safetensors file; the tensor data is not read.
    safetensors checks that the offsets cover the file exactly, so a truncated file fails here."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint weights not found: {path}")
    with open(path, "rb") as f:
        head = f.read(8)
    length = int.from_bytes(head, "little") if len(head) == 8 else -1
    if not 0 < length <= MAX_HEADER_BYTES:  # checked before safetensors parses it
        raise CheckpointError(path, "header length (first 8 bytes)", f"1 to {MAX_HEADER_BYTES:,} bytes",
                              f"{length:,}" if length >= 0 else f"a {len(head)}-byte file")
    try:
        with safe_open(str(path), "pt") as f:
            tensors = {k: (f.get_slice(k).get_dtype(), tuple(f.get_slice(k).get_shape())) for k in f.keys()}
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, RuntimeError) as err:
        raise CheckpointError(path, "file", "a complete safetensors file", f"a corrupt or truncated one ({err})") \
            from err
    return Header(path, tensors, metadata)


def _int_bound(limit, header: Header) -> tuple:
    """(bound, why) for an integer field: "width" (the default) is bounded by the largest
    tensor dimension, "count" by the number of tensors, a number is an absolute cap."""
    name = header.path.name
    if limit == "width":
        return header.largest_dim, f"the largest tensor dimension in {name}"
    if limit == "count":
        return len(header.tensors), f"the number of tensors in {name}"
    return limit, "the zoo's cap for this field"


def _check_int(value, limit, header: Header, source, item: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise CheckpointError(source, item, "an integer", repr(value))
    bound, why = _int_bound(limit, header)
    if not 0 <= value <= bound:
        raise CheckpointError(source, item, f"an integer from 0 to {bound} ({why})", str(value))


def _check_float(value, limit, source, item: str) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise CheckpointError(source, item, "a finite number", repr(value))
    lo, hi = limit if isinstance(limit, tuple) else (-math.inf, math.inf)
    if not lo <= value <= hi:
        raise CheckpointError(source, item, f"a number from {lo} to {hi}", repr(value))


def _check_tuple(value, limit, header: Header, source, item: str) -> None:
    bound = max(header.largest_dim, len(header.tensors))  # every entry makes a layer, a row, ...
    if not isinstance(value, (list, tuple)) or len(value) > bound:
        found = f"{len(value)} entries" if isinstance(value, (list, tuple)) else repr(value)
        raise CheckpointError(source, item, f"a list of at most {bound} integers (sizes in {header.path.name})", found)
    for i, entry in enumerate(value):
        _check_int(entry, limit, header, source, f"{item}[{i}]")


def _check_str(value, limit, source, item: str) -> None:
    """A string field: `limit` is a tuple of the allowed values, or a maximum length (default 200)."""
    if not isinstance(value, str):
        raise CheckpointError(source, item, "a string", repr(value)[:80])
    if isinstance(limit, tuple):
        if value not in limit:
            raise CheckpointError(source, item, f"one of {list(limit)}", repr(value)[:80])
        return
    cap = limit if isinstance(limit, int) else 200
    if len(value) > cap or any(ord(ch) < 32 for ch in value):
        raise CheckpointError(source, item, f"at most {cap} printable characters", repr(value[:80]))


def _default(field: dataclasses.Field):
    """A config field's default value: its type is the rule the checkpoint's value must follow."""
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    raise TypeError(f"config field {field.name!r} needs a default: validation reads its type from it")


def check_config(config_cls, values, header: Header, source, prefix: str = "net") -> None:
    """Refuse a net config before anything is built from it: unknown fields, wrong types,
    non-finite numbers, sizes the weights file cannot hold. `config_cls.LIMITS` (optional)
    maps a field to "count", an absolute cap, or a (lo, hi) range for a float; other
    integers are widths; a string field takes a tuple of allowed values or a length cap. Nested
    config dataclasses (a DiT's text encoder) are checked too."""
    if not isinstance(values, dict):
        raise CheckpointError(source, prefix, "a JSON object", type(values).__name__)
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    limits = getattr(config_cls, "LIMITS", {})
    for name, value in values.items():
        item = f"{prefix}.{name}"
        if name not in fields:
            raise CheckpointError(source, item, f"one of the {config_cls.__qualname__} fields {sorted(fields)}",
                                  "an unknown field")
        default = _default(fields[name])
        limit = limits.get(name, "width")
        if dataclasses.is_dataclass(default):
            check_config(type(default), value, header, source, item)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise CheckpointError(source, item, "true or false", repr(value))
        elif isinstance(default, int):
            _check_int(value, limit, header, source, item)
        elif isinstance(default, float):
            _check_float(value, limit, source, item)
        elif isinstance(default, tuple):
            _check_tuple(value, limit, header, source, item)
        elif isinstance(default, str):
            _check_str(value, limit, source, item)
        else:  # a new kind of config field needs a rule here before checkpoints may set it
            raise TypeError(f"{config_cls.__qualname__}.{name}: no validation rule for {type(default).__name__} fields")


# In-place random fills torch runs through torch._refs on the meta device; the first use
# imports torch._dynamo (about a second per process) to fill tensors that have no data.
_RANDOM_FILLS = {torch.Tensor.normal_, torch.Tensor.erfinv_, torch.Tensor.log_normal_, torch.Tensor.exponential_,
                 torch.Tensor.cauchy_, torch.Tensor.geometric_}


class _SkipMetaFills(TorchFunctionMode):
    """Initialisers (torch.nn.init and the random fills) are no-ops on meta tensors: skip
    them, so building on the meta device does not cost that import."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        target = args[0] if args else kwargs.get("tensor")  # torch.nn.init passes it by keyword
        is_init = func in _RANDOM_FILLS or getattr(func, "__module__", None) == "torch.nn.init"
        if is_init and getattr(target, "is_meta", False):
            return target
        return func(*args, **kwargs)


def build_on_meta(build, source, item: str = "net") -> torch.nn.Module:
    """`build()` on the meta device: the module's tensor names and shapes, no memory. The
    config passed check_config, so any error here is still the config's (a width that heads
    do not divide, an empty channel list...): reported as such, not as an internal error."""
    try:
        with torch.device("meta"), _SkipMetaFills():
            return build()
    except Exception as err:  # whatever the constructor raises, the input caused it
        raise CheckpointError(source, item, "a configuration the architecture can be built from",
                              f"{type(err).__name__}: {err}") from err


def _listing(names: list, limit: int = 4) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_tensors(header: Header, module: torch.nn.Module | None = None) -> None:
    """The header against the tensors `module` (built on the meta device) expects: same
    names, same shapes, floating dtypes where it has floats and its exact dtype where it has
    an integer buffer. Without a module every tensor must be floating."""
    path = header.path
    expected = {k: (v.dtype, tuple(v.shape)) for k, v in module.state_dict().items()} if module is not None else None
    if expected is not None:
        missing = sorted(set(expected) - set(header.tensors))
        if missing:
            raise CheckpointError(path, f"tensor {_listing(missing)}", "present (the config's architecture has it)",
                                  "missing")
        extra = sorted(set(header.tensors) - set(expected))
        if extra:
            raise CheckpointError(path, f"tensor {_listing(extra)}", "only the tensors of the config's architecture",
                                  "an unexpected tensor")
    for name in expected if expected is not None else header.tensors:  # the module's order: first layer first
        dtype, shape = header.tensors[name]
        want_dtype, want_shape = expected[name] if expected is not None else (torch.float32, None)
        if want_dtype.is_floating_point and dtype not in FLOAT_DTYPES:
            raise CheckpointError(path, f"tensor {name!r}", f"a floating dtype ({', '.join(FLOAT_DTYPES)})", dtype)
        if not want_dtype.is_floating_point and dtype != DTYPE_NAMES.get(want_dtype):
            raise CheckpointError(path, f"tensor {name!r}", f"dtype {DTYPE_NAMES.get(want_dtype, want_dtype)}", dtype)
        if want_shape is not None and shape != want_shape:
            others = sum(header.tensors[k][1] != v[1] for k, v in expected.items()) - 1
            raise CheckpointError(path, f"tensor {name!r}", f"shape {list(want_shape)} (from the config)",
                                  f"shape {list(shape)}" + (f" ({others} more tensors differ)" if others else ""))


def tensor_checksum(tensors: dict) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order: what
    save_checkpoint stores under CHECKSUM_KEY. It catches damage (a flipped bit in transit
    or on disk), not forgery: whoever can edit the file can rewrite it."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update((json.dumps([name, DTYPE_NAMES.get(t.dtype, str(t.dtype)), list(t.shape)]) + "\n").encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _check_checksum(header: Header, tensors: dict) -> None:
    stored = header.metadata.get(CHECKSUM_KEY)
    if stored is None:  # written before checksums, or by another tool: nothing to compare
        return
    if not re.fullmatch(r"[0-9a-f]{64}", stored):
        raise CheckpointError(header.path, f"metadata {CHECKSUM_KEY!r}", "64 lowercase hex digits", repr(stored[:80]))
    actual = tensor_checksum(tensors)
    if actual != stored:
        raise CheckpointError(header.path, f"tensor data (metadata {CHECKSUM_KEY!r})", f"SHA-256 {stored}",
                              f"{actual}: the file was damaged after it was written")


def check_finite(tensors: dict, path) -> None:
    """Every floating tensor finite: NaN or inf weights make every sample NaN. A finite sum
    proves it (NaN and inf propagate) at a fifth of the cost of isfinite; only a non-finite
    sum (or one that merely overflowed) pays for the exact count."""
    for name, t in tensors.items():
        if t.is_floating_point() and not torch.isfinite(t.sum()):
            bad = int((~torch.isfinite(t)).sum())
            if bad:
                raise CheckpointError(path, f"tensor {name!r}", "finite values",
                                      f"{bad} of {t.numel()} values NaN or infinite")


def load_validated_weights(path, expected_module: torch.nn.Module | None = None, header: Header | None = None) -> dict:
    """The tensors of a safetensors file, checked: names, shapes and dtypes against
    `expected_module` (built on the meta device; None: floats only, any names), the zoo's
    checksum when the file has one, finite values. Floating tensors come back as float32.
    `header`: an already read read_header(path), to skip reading it twice."""
    header = header or read_header(path)
    check_tensors(header, expected_module)
    try:
        with safe_open(str(header.path), "pt") as f:
            tensors = {k: f.get_tensor(k) for k in header.tensors}
    except (SafetensorError, OSError, RuntimeError) as err:  # changed on disk since the header was read
        raise CheckpointError(header.path, "file", "a complete safetensors file", f"an unreadable one ({err})") from err
    _check_checksum(header, tensors)  # before the finite check: a flipped bit is damage, not bad weights
    tensors = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    check_finite(tensors, header.path)
    return tensors
