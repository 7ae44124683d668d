"""Model specs: which network a run prunes, as one string that any later stage can rebuild.

Accepted forms (wherever a model name is accepted: CLI, Python API, explorer):
- `resnet56`: a sample model (sample_models' registry);
- `torchvision:NAME`: a torchvision classification model, random init (`weights=None`);
- `timm:NAME`: a timm model (`pip install pfs[timm]`), random init (`pretrained=False`);
- `path/to/file.py:factory` or `package.module:factory`: the user's own code, called with
  `num_classes` (and `in_channels` when its signature takes it).
The spec string and its arguments are what config.json records; `build_plain` rebuilds
the same network from them (the same weights too when the seed is set the same).

A run directory is data, never code: runs are shared (sent, copied, checked out), and the
user code a run names is only imported when this process was told to trust it, by the
user naming that spec (a command's model argument, the explorer's Setup) or passing
`--trust-model-code` (Python: `allow_model_code()`). Sample models and installed
torchvision/timm names are always allowed. A file spec is recorded as an absolute path
with the file's sha256, and a file whose content changed since is refused.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from engine.errors import PfsError

KINDS = ("sample", "torchvision", "timm", "file", "module")
IMAGENET_SIZE = (3, 224, 224)


@dataclass(frozen=True)
class ModelSpec:
    """A parsed spec: its kind, the name to look up, and (for user code) where it lives."""

    text: str
    kind: str
    name: str
    source: str = ""  # file path or module path for user factories
    sha256: str = ""  # a file spec read back from a run: the content it was recorded with

    @property
    def is_sample(self) -> bool:
        return self.kind == "sample"


def parse_spec(text: str) -> ModelSpec:
    """The ModelSpec a string names; a malformed one is a PfsError naming the accepted forms."""
    if not isinstance(text, str) or not text.strip():
        raise PfsError(f"model spec must be a non-empty string, got {text!r}; "
                       "use e.g. resnet20, torchvision:resnet18 or my_net.py:build")
    text = text.strip()
    prefix, sep, rest = text.partition(":")
    if not sep:
        return ModelSpec(text, "sample", text)
    if prefix in ("torchvision", "timm"):
        if not rest:
            raise PfsError(f"model spec {text!r} lacks a model name; use e.g. {prefix}:resnet18")
        return ModelSpec(text, prefix, rest)
    source, _, factory = text.rpartition(":")
    if not factory.isidentifier():
        raise PfsError(f"model spec {text!r}: {factory!r} is not a function name; "
                       "use path/to/file.py:factory or package.module:factory")
    if source.endswith(".py"):
        return ModelSpec(text, "file", factory, source)
    if all(part.isidentifier() for part in source.split(".")):
        return ModelSpec(text, "module", factory, source)
    raise PfsError(f"model spec {text!r} is not understood; use a sample model name, torchvision:NAME, "
                   "timm:NAME, path/to/file.py:factory or package.module:factory")


_ALLOWED: set[str] = set()  # the user code (file paths, module names) this process may import
_TRUST_ALL = {"on": False}


def code_source(spec: ModelSpec) -> str:
    """What a user-code spec imports: the file's absolute path, or the module's name."""
    return str(Path(spec.source).expanduser().resolve()) if spec.kind == "file" else spec.source


def allow_model_code(spec: str | ModelSpec | None = None) -> None:
    """Let this process import the code one spec names (the user named it), or, with no spec,
    the code any run names (`--trust-model-code`: the user trusts the runs they open)."""
    if spec is None:
        _TRUST_ALL["on"] = True
        return
    spec = spec if isinstance(spec, ModelSpec) else parse_spec(spec)
    if is_user_code(spec):
        _ALLOWED.add(code_source(spec))


def is_user_code(spec: str | ModelSpec) -> bool:
    """Whether a spec names the user's own code (a file or module), not a name pfs ships or installs."""
    return (spec if isinstance(spec, ModelSpec) else parse_spec(spec)).kind in ("file", "module")


def model_code_allowed(spec: str | ModelSpec) -> bool:
    """Whether building this spec may run its code here (always, for names pfs ships or installs)."""
    spec = spec if isinstance(spec, ModelSpec) else parse_spec(spec)
    return not is_user_code(spec) or _TRUST_ALL["on"] or code_source(spec) in _ALLOWED


def file_sha256(path: str | Path) -> str:
    """The sha256 of a model file's bytes: what a run records to refuse a file changed since."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def build_plain(spec: ModelSpec, *, num_classes: int, in_channels: int) -> nn.Module:
    """The foreign network a spec names, with random init and `num_classes` outputs.

    Sample models are built by sample_models (see engine.gating); this builds the others.
    """
    for key, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PfsError(f"{key} must be a positive integer, got {value!r}")
    if spec.kind == "torchvision":
        return _torchvision(spec, num_classes)
    if spec.kind == "timm":
        return _timm(spec, num_classes, in_channels)
    if spec.kind in ("file", "module"):
        return _user(spec, num_classes, in_channels)
    raise PfsError(f"{spec.text!r} is a sample model; build it with sample_models.create_model")


def torchvision_names() -> list[str]:
    """torchvision's classification models (the NAMEs `torchvision:NAME` accepts); none without it."""
    try:
        from torchvision import models
    except ImportError:
        return []
    return models.list_models(module=models)


def _torchvision(spec: ModelSpec, num_classes: int) -> nn.Module:
    from torchvision import models

    available = torchvision_names()
    if spec.name not in available:
        near = [n for n in available if spec.name.split("_")[0] in n][:6]
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        raise PfsError(f"torchvision has no classification model {spec.name!r}{hint}; "
                       "`python -c 'import torchvision; print(torchvision.models.list_models())'` lists them")
    kwargs = {"weights": None, "num_classes": num_classes}
    if spec.name.startswith("inception") or spec.name == "googlenet":
        kwargs["aux_logits"] = False
        kwargs["init_weights"] = True
    return models.get_model(spec.name, **kwargs)


def _timm(spec: ModelSpec, num_classes: int, in_channels: int) -> nn.Module:
    try:
        import timm
    except ImportError:
        raise PfsError(f"{spec.text} needs timm; install it with `pip install pfs[timm]`") from None
    if not timm.is_model(spec.name):
        raise PfsError(f"timm has no model {spec.name!r}; `python -c 'import timm; "
                       f"print(timm.list_models(\"{spec.name[:4]}*\"))'` lists similar ones")
    return timm.create_model(spec.name, pretrained=False, num_classes=num_classes, in_chans=in_channels)


def _user(spec: ModelSpec, num_classes: int, in_channels: int) -> nn.Module:
    factory = _load_factory(spec)
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    kwargs: dict[str, int] = {"num_classes": num_classes}
    if "in_channels" in params:
        kwargs["in_channels"] = in_channels
    if "num_classes" not in params and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        raise PfsError(f"{spec.text}: the factory must take num_classes (and optionally in_channels)")
    try:
        net = factory(**kwargs)
    except Exception as exc:  # the user's own code: say so, with its own words
        raise PfsError(f"your model code {spec.text} raised {type(exc).__name__}: {exc} (fix it there; "
                       "pfs called it with " + ", ".join(f"{k}={v}" for k, v in kwargs.items()) + ")") from exc
    if not isinstance(net, nn.Module):
        raise PfsError(f"{spec.text} returned {type(net).__name__}, not a torch.nn.Module; "
                       "make the factory return the network")
    return net


def _load_factory(spec: ModelSpec):
    if not model_code_allowed(spec):
        raise PfsError(f"this run's model is code from the {spec.kind} {code_source(spec)} ({spec.text}); pfs does "
                       "not import code a run names: add --trust-model-code if you trust it "
                       "(Python: engine.allow_model_code())")
    if spec.kind == "file":
        path = Path(spec.source).expanduser()
        if not path.is_file():
            raise PfsError(f"model file {path} does not exist; give the path to a .py file defining "
                           f"{spec.name}()")
        if spec.sha256 and file_sha256(path) != spec.sha256:
            raise PfsError(f"model file {path.resolve()} changed since the run was made (its sha256 is not the "
                           "recorded one); restore that file, or learn a new run from the changed one")
        module_name = f"pfs_user_model_{abs(hash(str(path.resolve())))}"
        module = sys.modules.get(module_name)
        if module is None:
            loader_spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[module_name] = module
            try:
                loader_spec.loader.exec_module(module)
            except Exception:
                sys.modules.pop(module_name, None)
                raise
    else:
        try:
            module = importlib.import_module(spec.source)
        except ImportError as exc:
            raise PfsError(f"cannot import {spec.source!r} ({exc}); put it on PYTHONPATH or "
                           "use path/to/file.py:factory") from None
    factory = getattr(module, spec.name, None)
    if not callable(factory):
        raise PfsError(f"{spec.source} has no function {spec.name!r}; name the factory that builds the network")
    return factory


def first_conv_channels(net: nn.Module) -> int | None:
    """The input channels the network's first convolution expects (None: no conv)."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    return None


def default_input_size(spec: ModelSpec, in_channels: int) -> tuple[int, int, int]:
    """The input size to count MACs at when no data set says otherwise."""
    if spec.kind in ("torchvision", "timm"):
        return (in_channels, *IMAGENET_SIZE[1:])
    return (in_channels, 32, 32)
