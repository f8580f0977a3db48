"""The generalized Jensen-Shannon divergence used by RGSD, computed directly from logits.

Convention (the same as TRL's): with p the student's and q the teacher's next-token distribution and the mixture
``m = beta * q + (1 - beta) * p``,

    JSD_beta = beta * KL(q || m) + (1 - beta) * KL(p || m),

with the endpoints handled explicitly: ``beta = 0`` is exactly the forward ``KL(q || p)`` and ``beta = 1`` exactly
the reverse ``KL(p || q)`` (the mixture formula degenerates to 0 there).

The divergence is a sum over the vocabulary of per-entry terms ``l_v`` that add up to it exactly:

* ``0 < beta < 1``: ``l_v = beta * q_v * (log q_v - log m_v) + (1 - beta) * p_v * (log p_v - log m_v)``
* ``beta = 0``:     ``l_v = q_v * (log q_v - log p_v)``
* ``beta = 1``:     ``l_v = p_v * (log p_v - log q_v)``

(entries of the two KL endpoints can be negative; only their sum is >= 0). Clipping, when asked for, caps either
each entry before the vocabulary sum (``clip_mode="entry"``: ``sum_v min(l_v, clip)``) or the per-position sum
(``clip_mode="token"``); a capped term carries no gradient. The teacher side is always stop-gradient and all math
runs in float32 whatever the input dtype. Logits must be finite (a ``-inf`` logit makes ``0 * log 0`` undefined).

Loss temperature: with ``temperature = T`` both sides' logits are divided by ``T`` before the softmax, so the
divergence compares the distributions the rollouts were sampled from when ``T`` is the rollout temperature (what
TRL's GKD does). ``T = 1`` is the untempered comparison. The RGSD paper does not say which; this is our choice,
and the clip applies to the tempered terms.

This module holds the contract every implementation shares: the options (:class:`LossOptions`, validated once,
when built) and the statistics every implementation returns (:class:`LossStats`), and the direct form (full
logits in memory, :func:`jsd_per_token` with the options as plain arguments) used on small inputs, as the
reference in tests and as the "naive" baseline. From hidden states:
:func:`rgsd.method.chunked_loss.naive_jsd_from_hidden` (reference),
:func:`~rgsd.method.chunked_loss.chunked_jsd_from_hidden` (fused, the default) and
:func:`rgsd.method.sharded_loss.checkpointed_jsd_from_hidden` (sharded weights) all take
``(student_hidden, teacher_hidden, student_head, teacher_head, options: LossOptions, *, student_bias=None,
teacher_bias=None, targets=None)`` and return ``(loss_sum, LossStats)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "CLIP_MODES",
    "LossOptions",
    "LossStats",
    "check_loss_options",
    "entry_terms",
    "generalized_jsd",
    "jsd_per_token",
    "upcast",
]

CLIP_MODES = ("entry", "token")
LOSS_IMPLS = ("auto", "fused", "checkpointed")


@dataclass(frozen=True)
class LossOptions:
    """The divergence's options; constructing one validates them (the only place they are checked).

    ``impl`` picks the implementation inside :class:`rgsd.method.student_loss.StudentLoss` (``auto`` = fused,
    or checkpointed when the weights are sharded); ``diagnostics`` asks for the signal diagnostics.
    """

    beta: float = 0.5
    clip: float | None = None
    clip_mode: str = "entry"
    top_k: int | None = None
    chunk_size: int = 1024
    temperature: float = 1.0
    impl: str = "auto"
    diagnostics: bool = False

    def __post_init__(self) -> None:
        temperature, beta, clip, clip_mode, top_k = self.temperature, self.beta, self.clip, self.clip_mode, self.top_k
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"loss temperature must be a finite number > 0, got {temperature!r}")
        if not (isinstance(beta, (int, float)) and 0.0 <= float(beta) <= 1.0):
            raise ValueError(f"beta must be in [0, 1], got {beta!r}")
        if clip is not None and not (isinstance(clip, (int, float)) and math.isfinite(clip) and clip > 0):
            raise ValueError(f"clip must be None or a finite number > 0, got {clip!r}")
        if clip_mode not in CLIP_MODES:
            raise ValueError(f"clip_mode must be one of {CLIP_MODES}, got {clip_mode!r}")
        if top_k is not None and not (isinstance(top_k, int) and top_k >= 1):
            raise ValueError(f"top_k must be None or an int >= 1, got {top_k!r}")
        if not (isinstance(self.chunk_size, int) and self.chunk_size >= 1):
            raise ValueError(f"chunk_size must be an int >= 1, got {self.chunk_size!r}")
        if self.impl not in LOSS_IMPLS:
            raise ValueError(f"loss impl must be one of {LOSS_IMPLS}, got {self.impl!r}")

    def check_vocab(self, vocab: int) -> None:
        """The one check that needs the vocabulary size: ``top_k <= vocab``."""
        if self.top_k is not None and self.top_k > vocab:
            raise ValueError(f"top_k must be None or an int in [1, vocab size {vocab}], got {self.top_k!r}")


def check_loss_options(
    beta: float, clip: float | None, clip_mode: str, top_k: int | None, vocab: int, temperature: float = 1.0
) -> None:
    """Raise ``ValueError`` naming the bad option when the loss options are out of range."""
    LossOptions(beta=beta, clip=clip, clip_mode=clip_mode, top_k=top_k, temperature=temperature).check_vocab(vocab)


@dataclass
class LossStats:
    """What every loss implementation returns beside the summed loss.

    Always present: ``n_tokens``, ``clipped_fraction_sum`` (summed over positions; for reduction across
    micro-batches and ranks) and ``clipped_fraction`` (its mean over positions), both detached.

    The signal diagnostics (see :mod:`rgsd.method.signal`) are ``None`` unless asked for and computed; only the
    fused loss (:func:`rgsd.method.chunked_loss.chunked_jsd_from_hidden`) computes them, the naive and the
    checkpointed ones leave them ``None``:
    ``divergence`` ``[N]`` unclipped per position, ``any_clipped`` ``[N]`` bool, ``removed`` ``[N]`` (the
    divergence the clip removed), ``target_logratio`` (log q - log p of the sampled token; only with targets,
    and with ``top_k`` only for the positions whose sampled token is in the teacher's top-k) and ``raised``
    ``[V]`` (sum over positions of q - p; ``None`` with ``top_k``).
    """

    n_tokens: int
    clipped_fraction: torch.Tensor | float
    clipped_fraction_sum: torch.Tensor | float
    divergence: torch.Tensor | None = None
    any_clipped: torch.Tensor | None = None
    removed: torch.Tensor | None = None
    target_logratio: torch.Tensor | None = None
    raised: torch.Tensor | None = None

    @property
    def has_diagnostics(self) -> bool:
        return self.divergence is not None


def upcast(x: torch.Tensor) -> torch.Tensor:
    """float32 for half/bf16/float32 inputs; float64 stays float64 (used by tests for tight checks)."""
    return x if x.dtype == torch.float64 else x.float()


def entry_terms(log_p: torch.Tensor, log_q: torch.Tensor, beta: float) -> torch.Tensor:
    """Per-(position, vocabulary entry) terms ``l_v`` whose sum over the last dim is ``JSD_beta``.

    ``log_p`` / ``log_q`` are normalized log-probabilities (float32) of the student / teacher.
    """
    if beta == 0.0:
        return log_q.exp() * (log_q - log_p)
    if beta == 1.0:
        return log_p.exp() * (log_p - log_q)
    # log m computed stably in log space: log(beta q + (1-beta) p) = logaddexp(log q + log beta, log p + log(1-beta))
    log_m = torch.logaddexp(log_q + math.log(beta), log_p + math.log1p(-beta))
    return beta * log_q.exp() * (log_q - log_m) + (1.0 - beta) * log_p.exp() * (log_p - log_m)


def jsd_per_token(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    beta: float = 0.5,
    clip: float | None = None,
    clip_mode: str = "entry",
    top_k: int | None = None,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-position generalized JSD and the per-position clipped fraction.

    Args:
        student_logits: ``[..., V]`` logits of the trainable student (gradient flows into them).
        teacher_logits: ``[..., V]`` logits of the teacher (detached here).
        beta: mixture weight; 0 = forward KL(teacher || student), 1 = reverse KL(student || teacher).
        clip: cap (``None`` = no clipping); see ``clip_mode``.
        clip_mode: ``"entry"`` caps each vocabulary term before summing, ``"token"`` caps the per-position sum.
        top_k: restrict both distributions to the teacher's top-k ids per position, renormalized.
        temperature: both sides' logits are divided by it before the softmax (1.0 = untempered).

    Returns:
        ``(loss [...], clipped_fraction [...])`` in float32 (float64 for float64 logits). The clipped fraction is the share of vocabulary
        (or top-k) entries that hit the cap in entry mode, and 1.0 where the position was capped in token mode;
        it is detached (for logging).
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student_logits shape {tuple(student_logits.shape)} != teacher_logits shape "
            f"{tuple(teacher_logits.shape)}"
        )
    if student_logits.dim() < 1:
        raise ValueError("logits need at least one dimension (the vocabulary)")
    check_loss_options(beta, clip, clip_mode, top_k, student_logits.shape[-1], temperature)
    beta = float(beta)

    student = student_logits
    teacher = teacher_logits.detach()
    if top_k is not None:
        ids = teacher.topk(top_k, dim=-1).indices
        teacher = teacher.gather(-1, ids)
        student = student.gather(-1, ids)
    log_p = F.log_softmax(upcast(student) / temperature, dim=-1)
    log_q = F.log_softmax(upcast(teacher) / temperature, dim=-1)
    terms = entry_terms(log_p, log_q, beta)

    if clip is None:
        loss = terms.sum(-1)
        frac = torch.zeros_like(loss)
    elif clip_mode == "entry":
        frac = (terms > clip).float().mean(-1)
        # clamp passes gradient only where the term is <= clip, so capped entries get none.
        loss = terms.clamp(max=clip).sum(-1)
    else:
        total = terms.sum(-1)
        frac = (total > clip).float()
        loss = total.clamp(max=clip)
    return loss, frac.detach()


def generalized_jsd(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    mask: torch.Tensor | None = None,
    beta: float = 0.5,
    clip: float | None = None,
    clip_mode: str = "entry",
    top_k: int | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Mean generalized JSD over the unmasked positions (a float32 scalar).

    Args:
        student_logits, teacher_logits: ``[..., V]``; the teacher is stop-gradient.
        mask: ``[...]`` bool or 0/1; positions where it is false neither count nor receive gradient.
            ``None`` means every position counts. With no unmasked position the result is 0.
        beta, clip, clip_mode, top_k, temperature: as in :func:`jsd_per_token`.
    """
    loss, _ = jsd_per_token(student_logits, teacher_logits, beta, clip, clip_mode, top_k, temperature)
    if mask is None:
        return loss.mean() if loss.numel() else loss.sum()
    if tuple(mask.shape) != tuple(loss.shape):
        raise ValueError(f"mask shape {tuple(mask.shape)} != logits shape without vocab {tuple(loss.shape)}")
    keep = mask.to(device=loss.device).bool()
    # Indexing (not multiplying by the mask) so that inf/NaN at masked positions cannot reach the value.
    kept = loss[keep]
    return kept.sum() / max(int(kept.numel()), 1)
