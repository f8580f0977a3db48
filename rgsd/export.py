"""``rgsd export RUN --out DIR [--merge] [--dtype D] [--push_to_hub ...]``: a trained model, ready to serve or share.

RUN is a run folder (its ``final/``, else its newest checkpoint), a checkpoint folder (``checkpoints/step-N``,
TRL's ``checkpoint-N``) or a model folder. With a LoRA adapter:

- ``--merge`` writes a full model: the base model (as the adapter names it) with the adapter merged in (PEFT
  ``merge_and_unload``), its generation config and the tokenizer, as safetensors in ``--dtype`` (default: the
  base model's own dtype). A plain transformers folder: ``from_pretrained`` and vLLM load it without PEFT;
- without ``--merge`` the adapter is copied, its ``adapter_config.json`` naming the base model as the user
  gave it.

A full fine-tuned model is written in ``--dtype`` either way. Every export gets the model card (README.md).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rgsd.hub import HubArgs, base_model_of, finish_model_folder, push_folder, run_dir_of
from rgsd.options import add_command, arg, options

HELP = "Export a trained model: the LoRA adapter merged into a plain transformers folder (--merge), or copied."

# what an adapter folder holds besides its weights (the tokenizer rgsd saves beside it)
_ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")


@dataclass
class ExportArgs:
    """Where the export goes and what it holds."""

    out: str | None = arg(None, "Folder to write (must not exist or be empty).")
    merge: bool = arg(
        False, "Merge the LoRA adapter into its base model: a full transformers folder (vLLM, TGI, "
               "from_pretrained without PEFT). Without it the adapter is copied.")
    dtype: Literal["auto", "fp32", "bf16", "fp16"] = arg(
        "auto", "dtype of the written weights; auto = the base model's own dtype (transformers' meaning).")


@dataclass
class ExportConfig(HubArgs, ExportArgs):
    """``rgsd export``'s options: the export, then (``push_to_hub``) the upload of the written folder."""

    def validate(self) -> None:
        super().validate()
        if not self.out:
            raise ValueError("--out DIR is required")


def model_folder(path: str | Path) -> Path:
    """The model folder in ``path``: a model or checkpoint folder, or a run folder's ``final/`` (else newest step)."""
    path = Path(path)
    if (path / "adapter_config.json").is_file() or (path / "config.json").is_file():
        return path
    if (path / "model").is_dir():  # rgsd train's checkpoints/step-N
        return model_folder(path / "model")
    if (path / "final").is_dir():
        return model_folder(path / "final")
    steps = sorted((path / "checkpoints").glob("step-*/model")) or sorted(
        path.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]) if p.name[11:].isdigit() else -1)
    if steps:
        return model_folder(steps[-1])
    raise FileNotFoundError(
        f"{path}: no model here (expected a run folder with final/ or checkpoints/, a checkpoint folder, or a "
        "folder with config.json or adapter_config.json)")


def export(run: str | Path, out: str | Path, merge: bool = False, dtype: str = "auto") -> Path:
    """Write the model of ``run`` to ``out`` (see the module doc); returns ``out``."""
    src = model_folder(run)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not empty: choose a new --out folder")
    run_dir = run_dir_of(src)
    adapter = (src / "adapter_config.json").is_file()
    base = base_model_of(src, run_dir)  # as the user gave it (never rgsd's cache folder)
    if adapter and not base:
        raise RuntimeError(f"{src / 'adapter_config.json'}: base_model_name_or_path is missing")
    out.mkdir(parents=True, exist_ok=True)
    if adapter and not merge:
        for name in _ADAPTER_FILES:
            if (src / name).is_file():
                shutil.copy2(src / name, out / name)
        kind = "adapter"
    else:
        _write_full(src, out, dtype, base if adapter else None)
        kind = "merged" if adapter else "full"
    _copy_tokenizer(src, out)
    finish_model_folder(out, run_dir, kind=kind, base=base)
    return out


def _write_full(src: Path, out: Path, dtype: str, adapter_base: str | None) -> None:
    """Full weights in ``dtype``: ``adapter_base`` with ``src``'s adapter merged in, or (None) ``src`` itself."""
    import torch
    from transformers import AutoModelForCausalLM

    from rgsd.models import resolve_model_path, torch_dtype

    want: torch.dtype | str = "auto" if dtype == "auto" else torch_dtype(dtype)
    if adapter_base is not None:
        from peft import PeftModel

        # the base in the wanted dtype first: the merge then happens at that precision
        model = AutoModelForCausalLM.from_pretrained(resolve_model_path(adapter_base), dtype=want)
        model = PeftModel.from_pretrained(model, str(src)).merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(str(src), dtype=want)
    # training switches the KV cache off; a served model wants it (config.json is what vLLM and TGI read)
    model.config.use_cache = True
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = model.config.pad_token_id
    model.save_pretrained(str(out))  # safetensors (transformers' default)


def _copy_tokenizer(src: Path, out: Path) -> None:
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(src))
    except (OSError, ValueError):  # a folder without its tokenizer (TRL checkpoints have one; be lenient)
        return
    tok.save_pretrained(str(out))


def _run(args: argparse.Namespace) -> int:
    cfg = options(args, ExportConfig)
    try:
        out = export(args.run, cfg.out, merge=cfg.merge, dtype=cfg.dtype)
    except (FileNotFoundError, FileExistsError) as err:  # a wrong RUN or --out: one line, no traceback
        print(f"rgsd export: error: {err}", file=sys.stderr)
        return 2
    print(f"exported {model_folder(args.run)} to {out}" + (" (merged)" if cfg.merge else ""))
    if cfg.push_to_hub:
        repo = push_folder(out, cfg, Path(out).resolve().name, f"rgsd export of {Path(args.run).name}")
        print(f"pushed {out} to the hub: {repo}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "export", [ExportConfig], _run, HELP,
                    description=__doc__.split("\n\n", 1)[1] if __doc__ else HELP)
    p.add_argument("run", metavar="RUN", help="run folder, checkpoint folder or model folder")
