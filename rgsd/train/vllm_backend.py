"""On-policy generation with vLLM through TRL's ``trl.generation.VLLMGeneration`` (GPU runs).

TRL's class does the engine work: server mode (``trl vllm-serve --model M`` on spare GPUs; prompts gathered
to rank 0, completions scattered back) or colocate mode (a vLLM engine inside each training process), and
the weight push: it gathers FSDP2 shards (``full_tensor``), merges LoRA adapters once with the full weights
gathered, maps ``modules_to_save`` names and streams everything inside one weight update. rgsd only hands it
the policy before each step's generation and turns its completions into :class:`~rgsd.method.rollout.Rollout`.

VLLMGeneration reads an Accelerate ``Accelerator`` for process information and the sharding kind (it checks
``state.fsdp_plugin.fsdp_version``), so one is built here over the process group rgsd already opened; it
never ``prepare``s anything.

Status: written against trl 1.16.0; not run (vLLM needs a GPU and was not installable on the CPU machine
this was built on).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from rgsd.method.rollout import Rollout, eos_ids
from rgsd.train.config import RGSDConfig
from rgsd.train.distributed import Dist


class VLLMGenerator:
    """Callable ``(model, prompts) -> rollouts`` with a weight sync before each call."""

    def __init__(self, cfg: RGSDConfig, tokenizer: Any, dist: Dist, model: nn.Module) -> None:
        from accelerate import Accelerator
        from accelerate.utils import FullyShardedDataParallelPlugin
        from trl.generation.vllm_generation import VLLMGeneration

        self.cfg, self.tok, self.dist, self.calls = cfg, tokenizer, dist, 0
        plugin = FullyShardedDataParallelPlugin(fsdp_version=2) if cfg.sharding == "fsdp2" else None
        self.accelerator = Accelerator(fsdp_plugin=plugin)
        self.engine = VLLMGeneration(
            model, self.accelerator, tokenizer,
            mode="server" if cfg.generation_backend == "vllm-server" else "colocate",
            server_host=cfg.vllm_server_host, server_port=cfg.vllm_server_port,
            temperature=cfg.temperature, top_p=cfg.top_p, max_completion_length=cfg.max_new_tokens,
            max_model_length=cfg.max_prompt_tokens + cfg.max_new_tokens, logprobs=None,
        )
        self.stops = eos_ids(model, tokenizer)  # every end-of-turn id, not only the tokenizer's eos

    def __call__(self, model: nn.Module, prompts: list[list[int]]) -> list[Rollout]:
        self.engine.model = model
        self.engine.sync_weights()  # collective: every rank takes part in gathering the shards
        # Server mode: one request seed per step and rank-0 batch (n samples of a prompt still differ);
        # colocate mode keeps TRL's per-rank engine seed.
        if self.cfg.generation_backend == "vllm-server":
            self.engine.generation_kwargs = {"seed": self.cfg.seed * 1_000_003 + self.calls}
        self.calls += 1
        n = self.cfg.rollouts_per_prompt  # the trainer repeats each prompt n times in a row
        _, completions, _, _ = self.engine.generate(prompts, None, n)
        out = []
        for p, c in zip(prompts, completions):
            c = list(c)
            cut = next((j for j, t in enumerate(c) if t in self.stops), None)
            finished = cut is not None
            c = c[: cut + 1] if finished else c
            out.append(Rollout(prompt_ids=list(p), response_ids=c,
                               text=self.tok.decode(c, skip_special_tokens=True).strip(), finished=finished))
        return out
