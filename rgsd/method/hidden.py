"""Final hidden states: what the divergence reads on both sides instead of full-vocabulary logits."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["check_hidden_is_final", "final_hidden"]


def final_hidden(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Final (post-norm) hidden states ``[B, L, H]`` through the model's own forward.

    Going through the top-level forward (not the inner decoder) keeps DDP and FSDP hooks intact. The final
    hidden state is read with a forward hook on the decoder (its ``last_hidden_state``) instead of
    ``output_hidden_states=True``, which would keep every layer's activations alive; ``logits_to_keep=1``
    keeps the full-vocabulary logits to a single position.
    """
    decoder = _decoder(model)
    captured: list[torch.Tensor] = []

    def grab(_module, _inputs, output):
        captured.append(output[0] if isinstance(output, tuple) else output.last_hidden_state)

    handle = decoder.register_forward_hook(grab)
    try:
        model(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=1)
    finally:
        handle.remove()
    return captured[-1]


def _decoder(model: nn.Module) -> nn.Module:
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return inner.get_decoder()


def check_hidden_is_final(model: nn.Module, head: nn.Module, device: torch.device) -> None:
    """Fail early if this architecture's last hidden state is not what its LM head reads."""
    ids = torch.tensor([[11, 12, 13, 14]], device=device)
    mask = torch.ones_like(ids)
    with torch.no_grad():
        hidden = final_hidden(model, ids, mask)
        ref = model(input_ids=ids, attention_mask=mask, logits_to_keep=1).logits[:, -1].float()
        got = head(hidden[:, -1]).float()
    if not torch.allclose(ref, got, atol=1e-2 * max(1.0, ref.abs().max().item()), rtol=1e-2):
        raise RuntimeError(
            "This model's last hidden state is not the input of its LM head (a final norm or logit scaling is "
            "applied elsewhere); rgsd's chunked loss cannot be used with it as is."
        )
