"""On-policy generation through a TRL vLLM server (``trl vllm-serve --model M``), for GPU runs.

Weight synchronization reuses TRL's ``VLLMClient`` (NCCL broadcast into the server's weights) rather than
hand-written transfer code. Before each step's generation the current policy weights are pushed (LoRA:
merged into the base for the push, then unmerged). Only the main process talks to the server; prompts are
gathered from every rank and the completions scattered back.

Status: written against trl 1.16.0's client API; not exercised in CI (needs a GPU and vLLM).
"""

from __future__ import annotations

import torch
from torch import nn

from rgsd.rollout import Rollout


class VLLMServerGenerator:
    def __init__(self, cfg, tokenizer, accelerator):
        self.cfg, self.tok, self.acc = cfg, tokenizer, accelerator
        self.client = None
        if accelerator.is_main_process:
            from trl.generation.vllm_client import VLLMClient

            self.client = VLLMClient(host=cfg.vllm_server_host, server_port=cfg.vllm_server_port,
                                     connection_timeout=240.0)
            self.client.init_communicator(device=torch.cuda.current_device())
        accelerator.wait_for_everyone()

    @torch.no_grad()
    def _push_weights(self, model: nn.Module) -> None:
        is_peft = hasattr(model, "merge_adapter")
        if is_peft:
            model.merge_adapter()
        try:
            if self.client is not None:
                for name, param in model.named_parameters():
                    if is_peft:
                        if "lora_" in name or "modules_to_save" in name:
                            continue
                        name = name.removeprefix("base_model.model.").replace(".base_layer", "")
                    self.client.update_named_param(name, param.data)
                self.client.reset_prefix_cache()
        finally:
            if is_peft:
                model.unmerge_adapter()

    def __call__(self, model: nn.Module, prompts: list[list[int]]) -> list[Rollout]:
        from accelerate.utils import broadcast_object_list, gather_object

        self._push_weights(model)
        all_prompts = gather_object([prompts])
        outputs: list = [None]
        if self.client is not None:
            flat = [p for rank_prompts in all_prompts for p in rank_prompts]
            res = self.client.generate(prompts=flat, n=1, temperature=self.cfg.temperature, top_p=self.cfg.top_p,
                                       max_tokens=self.cfg.max_new_tokens, logprobs=None)
            outputs = [res["completion_ids"]]
        outputs = broadcast_object_list(outputs)[0]
        start = sum(len(p) for p in all_prompts[: self.acc.process_index])
        mine = outputs[start : start + len(prompts)]
        eos = self.tok.eos_token_id
        return [
            Rollout(prompt_ids=list(p), response_ids=list(c), text=self.tok.decode(c, skip_special_tokens=True),
                    finished=bool(c) and c[-1] == eos)
            for p, c in zip(prompts, mine)
        ]
