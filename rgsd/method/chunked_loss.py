"""Memory-efficient generalized JSD straight from final hidden states (the path training uses).

Materializing the ``[N, V]`` logits of both student and teacher for a batch of response tokens costs tens of GB
at a 150k vocabulary (several fp32 copies are kept for autograd). :func:`chunked_jsd_from_hidden` instead walks
over ``chunk_size`` positions at a time: for each chunk it computes both sides' logits (matmul in the compute
dtype, divergence in float32), the loss, and at once the analytic gradient of the loss w.r.t. the student's
logits, which it turns into gradients for the student hidden chunk and (when they require grad) the head's
weight and bias. Only those gradients are kept; the custom autograd backward just scales them by the incoming
gradient. Extra memory is a few ``[chunk_size, V]`` float32 buffers plus the gradients themselves, and no
matmul is done twice.

Analytic gradient (per position, ``z`` = student logits, ``p = softmax(z)``, ``g_v = d loss / d log p_v`` with
capped entries zeroed): ``d loss / d z = g - p * sum_v g_v``, where
``g_v = (1 - beta) p_v (log p_v - log m_v)`` for ``0 < beta < 1`` (the second half of ``l_v`` itself),
``g_v = -q_v`` for ``beta = 0`` and ``g_v = p_v (log p_v - log q_v + 1)`` for ``beta = 1``.
With a loss temperature ``T`` the logits are divided by ``T`` first and the gradient gets a factor ``1 / T``.

With ``options.diagnostics`` the loop also fills, at almost no cost (from buffers it already holds), the signal
diagnostics of :class:`rgsd.method.losses.LossStats` (read by :mod:`rgsd.method.signal`): the unclipped
divergence per position, whether any entry of a position was clipped, the divergence mass the clip removed, the teacher-minus-student log-probability of the sampled token,
and the summed teacher-minus-student probability per vocabulary entry (which tokens the teacher raises).

:func:`naive_jsd_from_hidden` is the straightforward full-logits version (reference for tests and benchmark).
Both follow the contract of :mod:`rgsd.method.losses`: ``(student_hidden, teacher_hidden, student_head,
teacher_head, options, *, student_bias, teacher_bias, targets) -> (loss_sum, LossStats)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from rgsd.method.losses import LossOptions, LossStats, jsd_per_token, upcast

__all__ = ["chunked_jsd_from_hidden", "naive_jsd_from_hidden"]

Head = nn.Linear | torch.Tensor


def _unpack_head(
    head: Head, bias: torch.Tensor | None, name: str
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Weight ``[V, H]`` and optional bias ``[V]`` from an ``nn.Linear`` or a bare weight tensor."""
    if isinstance(head, nn.Linear):
        if bias is not None:
            raise ValueError(f"{name}: pass a bias only with a bare weight tensor, not with an nn.Linear")
        return head.weight, head.bias
    if isinstance(head, torch.Tensor):
        return head, bias
    raise TypeError(f"{name} must be an nn.Linear or a weight tensor [V, H], got {type(head).__name__}")


def _heads(
    s_h: torch.Tensor, t_h: torch.Tensor, student_head: Head, teacher_head: Head,
    student_bias: torch.Tensor | None, teacher_bias: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
    """Both heads' ``(weight, bias)`` as ``(s_w, s_b, t_w, t_b)``, checked against the hidden states."""
    s_w, s_b = _unpack_head(student_head, student_bias, "student_head")
    t_w, t_b = _unpack_head(teacher_head, teacher_bias, "teacher_head")
    _check_inputs(s_h, t_h, s_w, s_b, t_w, t_b)
    return s_w, s_b, t_w, t_b


def _check_inputs(
    s_h: torch.Tensor,
    t_h: torch.Tensor,
    s_w: torch.Tensor,
    s_b: torch.Tensor | None,
    t_w: torch.Tensor,
    t_b: torch.Tensor | None,
) -> None:
    if s_h.dim() != 2 or t_h.dim() != 2:
        raise ValueError(
            f"hidden states must be [N, H]; got student {tuple(s_h.shape)}, teacher {tuple(t_h.shape)}"
        )
    if s_h.shape[0] != t_h.shape[0]:
        raise ValueError(f"student has {s_h.shape[0]} positions, teacher {t_h.shape[0]}: they must match")
    for side, h, w, b in (("student", s_h, s_w, s_b), ("teacher", t_h, t_w, t_b)):
        if w.dim() != 2 or w.shape[1] != h.shape[1]:
            raise ValueError(f"{side} head weight {tuple(w.shape)} does not fit hidden size {h.shape[1]}")
        if b is not None and tuple(b.shape) != (w.shape[0],):
            raise ValueError(f"{side} head bias {tuple(b.shape)} does not fit vocab size {w.shape[0]}")
        if h.device != s_h.device or w.device != s_h.device:
            raise ValueError(f"{side} tensors are not all on {s_h.device}")
    if s_w.shape[0] != t_w.shape[0]:
        raise ValueError(f"student vocab {s_w.shape[0]} != teacher vocab {t_w.shape[0]}")


def _compute_dtype(h: torch.Tensor) -> torch.dtype:
    """The dtype the head's matmul would run in: the autocast dtype if autocast is on, else the hidden dtype."""
    dev = h.device.type
    if torch.is_autocast_enabled(dev):
        return torch.get_autocast_dtype(dev)
    return h.dtype


class _Workspace:
    """Reusable ``[rows, cols]`` buffers for the chunk loop.

    Every chunk needs the same few large buffers; allocating them once matters on CPU, where each fresh
    multi-hundred-MB tensor costs page faults (measured: about as long as the elementwise math itself).
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.bufs: dict[str, torch.Tensor] = {}

    def get(self, name: str, rows: int, cols: int, dtype: torch.dtype) -> torch.Tensor:
        buf = self.bufs.get(name)
        if buf is None or buf.shape[0] < rows or buf.shape[1] != cols or buf.dtype != dtype:
            buf = torch.empty(rows, cols, dtype=dtype, device=self.device)
            self.bufs[name] = buf
        return buf[:rows]


def _log_softmax_(x: torch.Tensor, scratch: torch.Tensor) -> torch.Tensor:
    """In-place log_softmax over the last dim, using ``scratch`` (same shape) for the exponentials."""
    x.sub_(x.amax(dim=-1, keepdim=True))
    torch.exp(x, out=scratch)
    return x.sub_(scratch.sum(dim=-1, keepdim=True).log_())


def _chunk_loss_and_grad(
    s: torch.Tensor,
    t: torch.Tensor,
    ws: _Workspace,
    beta: float,
    clip: float | None,
    clip_mode: str,
    need_grad: bool,
    temperature: float = 1.0,
    diag: dict | None = None,
    targets: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Per-position loss, clipped fraction and d loss / d student logits for one chunk.

    ``s`` and ``t`` are float32 (or float64) student / teacher logits ``[c, K]`` that this function overwrites;
    with the two workspace buffers M and X that makes 4 ``[c, K]`` tensors (plus a bool mask when clipping).
    The returned gradient lives in workspace buffer X: use it before the next call. When ``diag`` is a dict,
    the chunk's diagnostics are written into it (``targets``: column of the sampled token per row, or None).
    """
    rows, cols = s.shape
    x = ws.get("X", rows, cols, s.dtype)
    if temperature != 1.0:
        s.mul_(1.0 / temperature)
        t.mul_(1.0 / temperature)
    log_p = _log_softmax_(s, x)
    log_q = _log_softmax_(t, x)
    if diag is not None and targets is not None:
        col = targets.unsqueeze(1)
        diag["target_logratio"] = (log_q.gather(1, col) - log_p.gather(1, col)).squeeze(1)
    if beta == 0.0:  # forward KL(q || p): l = q (log q - log p), g = -q
        q = torch.exp(log_q, out=x)
        terms = log_q.sub_(log_p).mul_(q)
        p = log_p.exp_()
        if diag is not None:
            diag["raise"] = q.sum(0) - p.sum(0)
        g = q.neg_()
    elif beta == 1.0:  # reverse KL(p || q): l = p (log p - log q), g = l + p
        q_sum = log_q.exp().sum(0) if diag is not None else None
        p = torch.exp(log_p, out=x)
        if diag is not None:
            diag["raise"] = q_sum - p.sum(0)
        terms = log_q.neg_().add_(log_p).mul_(p)
        g = torch.add(terms, p, out=log_p)
    else:
        # log m = logaddexp(log q + log beta, log p + log(1 - beta)): stable in log space
        log_m = torch.add(log_q, math.log(beta), out=ws.get("M", rows, cols, s.dtype))
        torch.logaddexp(log_m, torch.add(log_p, math.log1p(-beta), out=x), out=log_m)
        q = torch.exp(log_q, out=x)
        if diag is not None:
            diag["raise"] = q.sum(0)
        terms = log_q.sub_(log_m).mul_(q).mul_(beta)  # beta q (log q - log m)
        p = torch.exp(log_p, out=x)  # q no longer needed: reuse its buffer
        if diag is not None:
            diag["raise"].sub_(p.sum(0))
        g = log_p.sub_(log_m).mul_(p).mul_(1.0 - beta)  # (1-beta) p (log p - log m)
        terms.add_(g)

    if clip is None:
        loss = terms.sum(-1)
        frac = torch.zeros_like(loss)
        any_clipped = torch.zeros(rows, dtype=torch.bool, device=s.device)
        total = loss
    elif clip_mode == "entry":
        total = terms.sum(-1) if diag is not None else None
        keep = torch.le(terms, clip, out=ws.get("keep", rows, cols, torch.bool))
        frac = 1.0 - keep.sum(-1).to(terms.dtype) / cols
        any_clipped = frac > 0
        loss = terms.clamp_(max=clip).sum(-1)
        g.mul_(keep)
    else:
        total = terms.sum(-1)
        keep = total <= clip
        frac = (~keep).to(terms.dtype)
        any_clipped = ~keep
        loss = total.clamp(max=clip)
        g.mul_(keep.unsqueeze(-1))
    if diag is not None:
        diag["divergence"] = total.detach().clone()
        diag["any_clipped"] = any_clipped
        diag["removed"] = (total - loss).detach()
    if not need_grad:
        return loss, frac, None
    dz = p.mul_(-g.sum(-1, keepdim=True)).add_(g)  # g - p * sum(g): back through log_softmax
    if temperature != 1.0:
        dz.mul_(1.0 / temperature)  # chain rule through z / T
    return loss, frac, dz


def _logits(
    ws: _Workspace, name: str, h: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None
) -> torch.Tensor:
    """``h @ w.T + b`` computed in ``h``'s dtype, delivered in a float32 (float64) workspace buffer."""
    acc = torch.promote_types(h.dtype, torch.float32)
    out = ws.get(name, h.shape[0], w.shape[0], acc)
    if h.dtype == acc:
        if b is None:
            return torch.mm(h, w.t(), out=out)
        return torch.addmm(b.to(acc), h, w.t(), out=out)
    # Low-precision matmul (what the model's own head would do), then upcast into the buffer.
    return out.copy_(F.linear(h, w, None if b is None else b.to(h.dtype)))


@dataclass(frozen=True)
class _Plan:
    """Everything the chunk loop needs besides the tensors: the options and which gradients to build."""

    options: LossOptions
    targets: torch.Tensor | None
    need_h: bool
    need_w: bool
    need_b: bool
    s_dtype: torch.dtype
    t_dtype: torch.dtype


def _run_chunks(
    s_h: torch.Tensor,
    s_w: torch.Tensor,
    s_b: torch.Tensor | None,
    t_h: torch.Tensor,
    t_w: torch.Tensor,
    t_b: torch.Tensor | None,
    plan: _Plan,
) -> tuple[torch.Tensor, torch.Tensor, tuple, dict | None]:
    """Loop over chunks.

    Returns ``(loss_sum, clipped_fraction_sum, (grad_h, grad_w_fp32, grad_b_fp32), diagnostics or None)``.
    """
    opts = plan.options
    # the options may hold ints (they validate numbers, not types): the loop computes with floats
    beta, temp = float(opts.beta), float(opts.temperature)
    clip = None if opts.clip is None else float(opts.clip)
    clip_mode, top_k, chunk = opts.clip_mode, opts.top_k, opts.chunk_size
    targets = plan.targets
    diag_parts: list[dict] | None = [] if opts.diagnostics else None
    need_h, need_w, need_b = plan.need_h, plan.need_w, plan.need_b
    s_dt, t_dt = plan.s_dtype, plan.t_dtype
    need_any = need_h or need_w or need_b
    n, hid = s_h.shape
    vocab = s_w.shape[0]
    dev = s_h.device

    # One cast of each weight to the compute dtype (no copy when it already matches).
    sw = s_w.detach().to(s_dt)
    tw = sw if (t_w is s_w and t_dt == s_dt) else t_w.detach().to(t_dt)
    sb = None if s_b is None else s_b.detach()
    tb = None if t_b is None else t_b.detach()

    acc = torch.promote_types(s_dt, torch.float32)  # float32, or float64 for float64 inputs
    loss_sum = torch.zeros((), dtype=acc, device=dev)
    frac_sum = torch.zeros((), dtype=acc, device=dev)
    grad_h = torch.empty(s_h.shape, dtype=s_h.dtype, device=dev) if need_h else None  # contiguous
    grad_w = torch.zeros(s_w.shape, dtype=acc, device=dev) if need_w else None
    grad_b = torch.zeros(vocab, dtype=acc, device=dev) if need_b else None
    # With a small top-k, gathering the k head rows per position beats a full [chunk, V] student matmul.
    rows_path = top_k is not None and top_k * hid <= vocab

    ws = _Workspace(dev)
    for start in range(0, n, chunk):
        end = min(start + chunk, n)
        h = s_h[start:end].detach().to(s_dt)
        t_logits = _logits(ws, "T", t_h[start:end].detach().to(t_dt), tw, tb)
        ids = None
        if top_k is not None:
            ids = t_logits.topk(top_k, dim=-1).indices
            t_logits = t_logits.gather(-1, ids)
        if rows_path:
            rows = sw[ids]  # [c, k, H]
            s_logits = torch.bmm(rows, h.unsqueeze(-1)).squeeze(-1)
            if sb is not None:
                s_logits = s_logits + sb[ids].to(s_dt)
            s_logits = upcast(s_logits)
        else:
            s_logits = _logits(ws, "S", h, sw, sb)
            if ids is not None:
                s_logits = s_logits.gather(-1, ids)
        diag = None if diag_parts is None else {}
        tgt = None
        if diag is not None and targets is not None:
            tgt = targets[start:end].to(dev)
            if ids is not None:  # column of the sampled token among the top-k (-1: outside the top-k)
                hit = ids.eq(tgt.unsqueeze(1))
                tgt = torch.where(hit.any(1), hit.float().argmax(1), torch.zeros_like(tgt))
                diag["target_in_top_k"] = hit.any(1)
        loss, frac, dz = _chunk_loss_and_grad(s_logits, t_logits, ws, beta, clip, clip_mode, need_any,
                                              temp, diag, tgt)
        if diag is not None:
            if ids is not None:  # top-k columns differ per row: a column sum names no token
                diag.pop("raise")
            diag_parts.append(diag)
        del s_logits, t_logits
        loss_sum += loss.sum()
        frac_sum += frac.sum()
        if dz is None:
            continue
        if rows_path:
            if need_h:
                grad_h[start:end] = torch.bmm(dz.to(s_dt).unsqueeze(1), rows).squeeze(1)
            flat_ids = ids.reshape(-1)
            if need_w:
                outer = dz.unsqueeze(-1) * upcast(h).unsqueeze(1)  # [c, k, H]
                grad_w.index_add_(0, flat_ids, outer.reshape(-1, hid))
            if need_b:
                grad_b.index_add_(0, flat_ids, dz.reshape(-1))
            continue
        if ids is not None:  # top-k with a large k: scatter back into a dense [c, V] gradient
            dz = ws.get("S", end - start, vocab, acc).zero_().scatter_(1, ids, dz)
        if need_b:
            grad_b += dz.sum(0)
        dzc = dz.to(s_dt)
        if need_h:
            if dzc.dtype == grad_h.dtype:
                torch.mm(dzc, sw, out=grad_h[start:end])
            else:
                grad_h[start:end] = dzc @ sw
        if need_w:
            if s_dt == acc:
                grad_w.addmm_(dzc.t(), h)
            else:
                grad_w += dzc.t() @ h
        del dz, dzc
    diag = _merge_diag(diag_parts) if diag_parts is not None else None
    return loss_sum, frac_sum, (grad_h, grad_w, grad_b), diag


def _merge_diag(parts: list[dict]) -> dict:
    """Concatenate the per-chunk diagnostics (per-position vectors) and sum the per-vocabulary ones."""
    out: dict = {}
    for key in parts[0]:
        vals = [p[key] for p in parts]
        out[key] = torch.stack(vals).sum(0) if key == "raise" else torch.cat(vals)
    if "target_in_top_k" in out:  # a sampled token outside the teacher's top-k has no log-ratio
        out["target_logratio"] = out["target_logratio"][out.pop("target_in_top_k")]
    return out


class _ChunkedJSD(torch.autograd.Function):
    """Forward computes loss and gradients chunk by chunk; backward scales the stored gradients.

    The diagnostics (a dict of detached tensors, or None) leave as a third, non-tensor output.
    """

    @staticmethod
    def forward(ctx, s_h, s_w, s_b, t_h, t_w, t_b, plan):  # type: ignore[override]
        with torch.autocast(s_h.device.type, enabled=False):
            loss_sum, frac_sum, grads, diag = _run_chunks(s_h, s_w, s_b, t_h, t_w, t_b, plan)
        ctx.grads = grads
        ctx.dtypes = (s_h.dtype, s_w.dtype, None if s_b is None else s_b.dtype)
        ctx.mark_non_differentiable(frac_sum)
        return loss_sum, frac_sum, diag

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss, _grad_frac, _grad_diag):  # type: ignore[override]
        if ctx.grads is None:
            raise RuntimeError("chunked_jsd_from_hidden: backward can run only once (no retain_graph reuse)")
        grads, ctx.grads = ctx.grads, None
        out = []
        for grad, dtype in zip(grads, ctx.dtypes):
            # Scale in place (the weight gradient can be GBs: no second copy), then hand it over in the input's
            # own dtype; for bf16 inputs the scaling happens in float32 before the cast.
            if grad is not None:
                grad = upcast(grad)
                grad = grad.mul_(grad_loss.to(grad.dtype)).to(dtype)
            out.append(grad)
        del grads
        return out[0], out[1], out[2], None, None, None, None


def chunked_jsd_from_hidden(
    student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, student_head: Head, teacher_head: Head,
    options: LossOptions, *, student_bias: torch.Tensor | None = None,
    teacher_bias: torch.Tensor | None = None, targets: torch.Tensor | None = None,
) -> tuple[torch.Tensor, LossStats]:
    """Summed generalized JSD over ``N`` positions, computed from final hidden states in chunks.

    Args:
        student_hidden: ``[N, H]`` student final hidden states at the (already selected) response positions.
        teacher_hidden: ``[N, H_t]`` teacher hidden states at the same positions (treated as constants).
        student_head: the student's output layer, an ``nn.Linear`` or a weight ``[V, H]``; its weight/bias get
            gradients when they require grad (full fine-tuning, tied embeddings) and none when frozen (LoRA).
        teacher_head: the teacher's output layer (may be the very same object as ``student_head``); never
            receives gradient.
        options: the divergence's :class:`~rgsd.method.losses.LossOptions` (``impl`` is not read here).
            ``chunk_size`` is the positions per chunk (peak extra memory is a few ``chunk_size x V`` float32
            buffers). ``diagnostics`` also fills the signal diagnostics of the returned
            :class:`~rgsd.method.losses.LossStats`: ``divergence`` ``[N]`` (unclipped, per position),
            ``any_clipped`` ``[N]`` bool, ``removed`` ``[N]`` (divergence the clip removed),
            ``target_logratio`` (``[N]``, with ``targets``; log q - log p of the sampled token) and ``raised``
            ``[V]`` (sum over positions of q - p; ``None`` with ``top_k``).
        student_bias, teacher_bias: optional ``[V]`` biases when the heads are given as bare weights.
        targets: ``[N]`` the sampled token id at each position (for the ``target_logratio`` diagnostic).

    Returns:
        ``(loss_sum, stats)``: ``loss_sum`` is a float32 scalar, the SUM over positions (divide by the global
        token count yourself); ``stats`` (a :class:`~rgsd.method.losses.LossStats`) holds ``clipped_fraction``
        (detached 0-dim tensor, mean over positions of the share of vocabulary entries that hit the cap),
        ``clipped_fraction_sum`` (its sum, for reduction across micro-batches/ranks) and ``n_tokens`` (int).
        Gradients come back in each input's dtype. Double backward is not supported.
        Under FSDP the head weight must be the full (unsharded) tensor.
    """
    s_w, s_b, t_w, t_b = _heads(student_hidden, teacher_hidden, student_head, teacher_head, student_bias,
                                teacher_bias)
    options.check_vocab(s_w.shape[0])
    if targets is not None and tuple(targets.shape) != (student_hidden.shape[0],):
        raise ValueError(f"targets shape {tuple(targets.shape)} != ({student_hidden.shape[0]},)")

    grad_on = torch.is_grad_enabled()
    plan = _Plan(
        options=options,
        targets=targets,
        need_h=grad_on and student_hidden.requires_grad,
        need_w=grad_on and s_w.requires_grad,
        need_b=grad_on and s_b is not None and s_b.requires_grad,
        s_dtype=_compute_dtype(student_hidden),
        t_dtype=_compute_dtype(teacher_hidden),
    )
    if plan.need_h or plan.need_w or plan.need_b:
        loss_sum, frac_sum, diag = _ChunkedJSD.apply(student_hidden, s_w, s_b, teacher_hidden, t_w, t_b, plan)
    else:
        with torch.no_grad(), torch.autocast(student_hidden.device.type, enabled=False):
            loss_sum, frac_sum, _, diag = _run_chunks(student_hidden, s_w, s_b, teacher_hidden, t_w, t_b, plan)
    n = student_hidden.shape[0]
    stats = LossStats(
        n_tokens=n,
        clipped_fraction=frac_sum.detach() / max(n, 1),
        clipped_fraction_sum=frac_sum.detach(),
    )
    if diag is not None:
        stats.divergence, stats.any_clipped = diag["divergence"], diag["any_clipped"]
        stats.removed = diag["removed"]
        stats.target_logratio, stats.raised = diag.get("target_logratio"), diag.get("raise")
    return loss_sum, stats


def naive_jsd_from_hidden(
    student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, student_head: Head, teacher_head: Head,
    options: LossOptions, *, student_bias: torch.Tensor | None = None,
    teacher_bias: torch.Tensor | None = None, targets: torch.Tensor | None = None,
) -> tuple[torch.Tensor, LossStats]:
    """Same contract as :func:`chunked_jsd_from_hidden`, but materializes both full ``[N, V]`` logit tensors
    and differentiates with plain autograd. Reference for tests and benchmarks. ``options.chunk_size`` is
    ignored; ``targets`` and ``options.diagnostics`` are accepted for the shared contract, but no diagnostics
    are computed (their fields stay ``None``)."""
    del targets
    s_w, s_b, t_w, t_b = _heads(student_hidden, teacher_hidden, student_head, teacher_head, student_bias,
                                teacher_bias)
    s_logits = F.linear(student_hidden, s_w, s_b)
    with torch.no_grad():
        t_logits = F.linear(teacher_hidden, t_w, t_b)
    loss, frac = jsd_per_token(s_logits, t_logits, options.beta, options.clip, options.clip_mode, options.top_k,
                               options.temperature)
    n = student_hidden.shape[0]
    frac_sum = frac.sum()
    return loss.sum(), LossStats(n_tokens=n, clipped_fraction=frac_sum / max(n, 1), clipped_fraction_sum=frac_sum)
