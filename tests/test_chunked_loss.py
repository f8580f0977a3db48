"""rgsd.method.chunked_loss: the chunked, analytic-gradient JSD equals the naive full-logits autograd version."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from rgsd.method.chunked_loss import chunked_jsd_from_hidden, naive_jsd_from_hidden
from rgsd.method.losses import LossOptions, entry_terms

N, H, V = 23, 16, 64


def _setup(seed: int, bias: bool = True, dtype=torch.float32):
    torch.manual_seed(seed)
    s_h = (torch.randn(N, H) * 1.5).to(dtype).requires_grad_(True)
    t_h = (torch.randn(N, H) * 1.5).to(dtype)
    s_head = nn.Linear(H, V, bias=bias).to(dtype)
    t_head = nn.Linear(H, V, bias=bias).to(dtype)
    t_head.requires_grad_(False)
    return s_h, t_h, s_head, t_head


def _run(fn, s_h, t_h, s_head, t_head, scale=1.0, **kw):
    """Loss sum, stats and the gradients of ``scale * loss`` (fresh grads each call).

    ``kw``: the ``LossOptions`` fields, and the biases (keyword arguments of the call itself)."""
    s_h.grad = None
    params = [p for p in (getattr(s_head, "weight", s_head), getattr(s_head, "bias", None)) if p is not None]
    for p in params:
        p.grad = None
    biases = {k: kw.pop(k) for k in ("student_bias", "teacher_bias") if k in kw}
    loss, stats = fn(s_h, t_h, s_head, t_head, LossOptions(**kw), **biases)
    (loss * scale).backward()
    grads = [s_h.grad] + [p.grad for p in params]
    return loss.detach(), stats, [None if g is None else g.clone() for g in grads]


def _assert_same(a, b, rtol=1e-5, atol=1e-6):
    loss_a, stats_a, grads_a = a
    loss_b, stats_b, grads_b = b
    torch.testing.assert_close(loss_a, loss_b, rtol=rtol, atol=atol)
    torch.testing.assert_close(stats_a.clipped_fraction, stats_b.clipped_fraction, rtol=0, atol=1e-6)
    assert stats_a.n_tokens == stats_b.n_tokens == N
    for ga, gb in zip(grads_a, grads_b):
        assert (ga is None) == (gb is None)
        if ga is not None:
            assert ga.dtype == gb.dtype
            torch.testing.assert_close(ga, gb, rtol=rtol, atol=atol)


def _clip_for(s_h, t_h, s_head, t_head, beta, mode, top_k):
    """A cap between two middle order statistics of the (positive) entry terms or per-position sums, so that
    some but not all are clipped."""
    with torch.no_grad():
        s, t = s_head(s_h), t_head(t_h)
        if top_k is not None:
            ids = t.topk(top_k, -1).indices
            s, t = s.gather(-1, ids), t.gather(-1, ids)
        terms = entry_terms(s.double().log_softmax(-1), t.double().log_softmax(-1), beta)
        vals = terms[terms > 0] if mode == "entry" else terms.sum(-1)
        vals = vals.sort().values
        i = len(vals) // 2
        return float(vals[i - 1] + vals[i]) / 2


# top_k=4: gathered head rows (4 * H <= V); top_k=8: dense logits then gather (8 * H > V).
@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("clip_mode", [None, "entry", "token"])
@pytest.mark.parametrize("top_k", [None, 4, 8])
@pytest.mark.parametrize("chunk_size", [7, 64])  # 7 does not divide N = 23; 64 > N
def test_chunked_equals_naive(beta, clip_mode, top_k, chunk_size):
    s_h, t_h, s_head, t_head = _setup(0)
    mode = clip_mode or "entry"
    clip = None if clip_mode is None else _clip_for(s_h, t_h, s_head, t_head, beta, mode, top_k)
    kw = {"beta": beta, "clip": clip, "clip_mode": mode, "top_k": top_k, "chunk_size": chunk_size}
    got = _run(chunked_jsd_from_hidden, s_h, t_h, s_head, t_head, scale=0.37, **kw)
    want = _run(naive_jsd_from_hidden, s_h, t_h, s_head, t_head, scale=0.37, **kw)
    _assert_same(got, want)
    if clip is not None:
        assert 0.0 < want[1].clipped_fraction.item() < 1.0, "clip value does not exercise clipping"


@pytest.mark.parametrize("chunk_size", [1, N])
@pytest.mark.parametrize("top_k", [None, 4])
def test_chunk_edge_sizes(chunk_size, top_k):
    s_h, t_h, s_head, t_head = _setup(10)
    clip = _clip_for(s_h, t_h, s_head, t_head, 0.5, "entry", top_k)
    kw = {"beta": 0.5, "clip": clip, "top_k": top_k, "chunk_size": chunk_size}
    _assert_same(
        _run(chunked_jsd_from_hidden, s_h, t_h, s_head, t_head, **kw),
        _run(naive_jsd_from_hidden, s_h, t_h, s_head, t_head, **kw),
    )


@pytest.mark.parametrize("top_k", [None, 4])
def test_frozen_head_gets_no_grad(top_k):
    s_h, t_h, s_head, _ = _setup(1)
    s_head.requires_grad_(False)  # LoRA-style: head frozen, only the hidden states carry gradient
    kw = {"beta": 0.5, "clip": 0.01, "top_k": top_k, "chunk_size": 5}
    got = _run(chunked_jsd_from_hidden, s_h, t_h, s_head, s_head, **kw)
    want = _run(naive_jsd_from_hidden, s_h, t_h, s_head, s_head, **kw)
    _assert_same(got, want)
    assert got[2][1] is None and s_head.weight.grad is None


@pytest.mark.parametrize("top_k", [None, 4, 8])
def test_tied_head_shared_with_embedding_and_teacher(top_k):
    torch.manual_seed(2)
    emb = nn.Embedding(V, H)  # tied: the output head IS the embedding matrix, trainable
    ids = torch.randint(0, V, (N,))
    t_h = torch.randn(N, H)
    results = []
    for fn in (chunked_jsd_from_hidden, naive_jsd_from_hidden):
        emb.weight.grad = None
        s_h = torch.tanh(emb(ids)) * 2.0  # hidden states that themselves depend on the tied weight
        loss, _ = fn(
            s_h, t_h, emb.weight, emb.weight, LossOptions(beta=0.3, clip=0.2, clip_mode="token", top_k=top_k,
                                                          chunk_size=6)
        )
        loss.backward()
        results.append((loss.detach(), emb.weight.grad.clone()))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-5, atol=1e-6)


def test_bare_weight_with_bias_kwargs():
    s_h, t_h, s_head, t_head = _setup(3)
    kw = {
        "beta": 0.5,
        "clip": 0.01,
        "chunk_size": 4,
        "student_bias": s_head.bias,
        "teacher_bias": t_head.bias,
    }
    got = _run(chunked_jsd_from_hidden, s_h, t_h, s_head.weight, t_head.weight, **kw)
    want = _run(naive_jsd_from_hidden, s_h, t_h, s_head, t_head, beta=0.5, clip=0.01)
    loss_g, _, (gh_g,) = got[0], got[1], got[2][:1]
    torch.testing.assert_close(loss_g, want[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gh_g, want[2][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(s_head.bias.grad, want[2][2], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="bias"):
        chunked_jsd_from_hidden(s_h, t_h, s_head, t_head, LossOptions(), student_bias=s_head.bias)


def test_bf16_inputs():
    s32, t32, s_head32, t_head32 = _setup(4, dtype=torch.float32)
    sb = s32.detach().bfloat16().requires_grad_(True)
    tb = t32.detach().bfloat16()
    s_head = nn.Linear(H, V).bfloat16()
    s_head.load_state_dict({k: v.bfloat16() for k, v in s_head32.state_dict().items()})
    t_head = t_head32.bfloat16()
    got = _run(chunked_jsd_from_hidden, sb, tb, s_head, t_head, beta=0.5, chunk_size=5)
    naive = _run(naive_jsd_from_hidden, sb, tb, s_head, t_head, beta=0.5)
    assert got[0].dtype == torch.float32
    assert all(g.dtype == torch.bfloat16 for g in got[2])
    # Same bf16 logits on both paths, fp32 divergence: the losses agree to fp32 accuracy.
    torch.testing.assert_close(got[0], naive[0], rtol=1e-5, atol=1e-5)
    for g, w in zip(got[2], naive[2]):
        torch.testing.assert_close(g.float(), w.float(), rtol=2e-2, atol=2e-3)


def test_fp32_inputs_under_bf16_autocast():
    s_h, t_h, s_head, t_head = _setup(5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = _run(chunked_jsd_from_hidden, s_h, t_h, s_head, t_head, chunk_size=8)
        naive = _run(naive_jsd_from_hidden, s_h, t_h, s_head, t_head)
    ref = _run(naive_jsd_from_hidden, s_h, t_h, s_head, t_head)  # fp32 throughout
    assert all(g.dtype == torch.float32 for g in got[2])
    torch.testing.assert_close(got[0], naive[0], rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(got[0], ref[0], rtol=5e-2, atol=1e-3)
    for g, w in zip(got[2], naive[2]):
        torch.testing.assert_close(g, w, rtol=2e-2, atol=2e-3)


def test_no_grad_mode_and_empty_input():
    s_h, t_h, s_head, t_head = _setup(6)
    with torch.no_grad():
        loss, stats = chunked_jsd_from_hidden(s_h, t_h, s_head, t_head, LossOptions(clip=0.01, chunk_size=5))
    ref, ref_stats = naive_jsd_from_hidden(s_h, t_h, s_head, t_head, LossOptions(clip=0.01))
    assert not loss.requires_grad
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(stats.clipped_fraction_sum, ref_stats.clipped_fraction_sum)

    empty = s_h[:0]
    loss, stats = chunked_jsd_from_hidden(empty, t_h[:0], s_head, t_head, LossOptions())
    loss.backward()
    assert loss.item() == 0.0 and stats.n_tokens == 0 and stats.clipped_fraction.item() == 0.0
    assert torch.all(s_head.weight.grad == 0)


def test_non_contiguous_hidden():
    torch.manual_seed(11)
    base = torch.randn(H, N, requires_grad=True)
    t_h = torch.randn(N, H)
    s_head, t_head = nn.Linear(H, V), nn.Linear(H, V)
    grads = []
    for fn in (chunked_jsd_from_hidden, naive_jsd_from_hidden):
        base.grad = None
        # an [N, H] view with transposed strides
        loss, _ = fn(base.t(), t_h, s_head, t_head, LossOptions(chunk_size=6))
        loss.backward()
        grads.append(base.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-6)


def test_second_backward_is_refused():
    s_h, t_h, s_head, t_head = _setup(9)
    loss, _ = chunked_jsd_from_hidden(s_h, t_h, s_head, t_head, LossOptions(chunk_size=5))
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="only once"):
        loss.backward()


class _MaxNumel(TorchDispatchMode):
    """Records the largest tensor any op produces."""

    def __init__(self):
        super().__init__()
        self.max_numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.max_numel = max(self.max_numel, t.numel())
        return out


@pytest.mark.parametrize("top_k", [None, 4])
def test_never_materializes_full_logits(top_k):
    n, chunk = 200, 16  # N * V = 12,800 > V * H = 1,024 (weight grad) > chunk * V = 1,024
    torch.manual_seed(7)
    s_h = torch.randn(n, H, requires_grad=True)
    s_head, t_head = nn.Linear(H, V), nn.Linear(H, V)
    with _MaxNumel() as rec:
        loss, _ = chunked_jsd_from_hidden(
            s_h, torch.randn(n, H), s_head, t_head, LossOptions(top_k=top_k, chunk_size=chunk)
        )
        loss.backward()
    assert rec.max_numel <= max(chunk * V, V * H, n * H)
    with _MaxNumel() as rec_naive:
        naive_jsd_from_hidden(s_h, torch.randn(n, H), s_head, t_head, LossOptions())[0].backward()
    assert rec_naive.max_numel >= n * V  # the recorder does see full logits when they exist


def test_bad_inputs():
    s_h, t_h, s_head, t_head = _setup(8)
    with pytest.raises(ValueError, match="positions"):
        chunked_jsd_from_hidden(s_h, t_h[:-1], s_head, t_head, LossOptions())
    with pytest.raises(ValueError, match="hidden size"):
        chunked_jsd_from_hidden(s_h, t_h, nn.Linear(H + 1, V), t_head, LossOptions())
    with pytest.raises(ValueError, match="vocab"):
        chunked_jsd_from_hidden(s_h, t_h, s_head, nn.Linear(H, V + 1), LossOptions())
    with pytest.raises(ValueError, match="chunk_size"):
        chunked_jsd_from_hidden(s_h, t_h, s_head, t_head, LossOptions(chunk_size=0))
    with pytest.raises(ValueError, match="beta"):
        chunked_jsd_from_hidden(s_h, t_h, s_head, t_head, LossOptions(beta=-0.1))
    with pytest.raises(TypeError, match="student_head"):
        chunked_jsd_from_hidden(s_h, t_h, "lm_head", t_head, LossOptions())


# ---------------------------------------------------------------- loss temperature and diagnostics
@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("clip_mode", [None, "entry", "token"])
@pytest.mark.parametrize("top_k", [None, 4])
def test_temperature_chunked_equals_naive(beta, clip_mode, top_k):
    s_h, t_h, s_head, t_head = _setup(3)
    mode = clip_mode or "entry"
    clip = None if clip_mode is None else _clip_for(s_h, t_h, s_head, t_head, beta, mode, top_k)
    kw = {"beta": beta, "clip": clip, "clip_mode": mode, "top_k": top_k, "chunk_size": 7, "temperature": 0.7}
    got = _run(chunked_jsd_from_hidden, s_h, t_h, s_head, t_head, scale=0.5, **kw)
    want = _run(naive_jsd_from_hidden, s_h, t_h, s_head, t_head, scale=0.5, **kw)
    _assert_same(got, want)
    untempered = _run(naive_jsd_from_hidden, s_h, t_h, s_head, t_head, **{**kw, "temperature": 1.0})
    assert abs(float(untempered[0]) - float(want[0])) > 1e-3


def test_temperature_against_float64_reference():
    """Chunked at T = 0.7 equals float64 autograd of the brute-force definition on logits / T."""
    s_h, t_h, s_head, t_head = _setup(4)
    temp = 0.7
    got = _run(chunked_jsd_from_hidden, s_h, t_h, s_head, t_head, beta=0.5, chunk_size=5, temperature=temp)
    sh = s_h.detach().double().requires_grad_(True)
    with torch.no_grad():
        tl = (t_head(t_h).double()) / temp
    sl = (sh @ s_head.weight.double().t() + s_head.bias.double()) / temp
    ref = entry_terms(sl.log_softmax(-1), tl.log_softmax(-1), 0.5).sum()
    ref.backward()
    torch.testing.assert_close(got[0].double(), ref.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got[2][0].double(), sh.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("clip_mode", ["entry", "token"])
def test_diagnostics_against_float64_reference(clip_mode):
    """Per-position divergence, any-clipped flags, removed mass, sampled-token log-ratio and the per-token
    raise vector, checked against a float64 recomputation from the full logits."""
    s_h, t_h, s_head, t_head = _setup(5)
    temp = 0.8
    with torch.no_grad():
        sl = s_head(s_h).double() / temp
        tl = t_head(t_h).double() / temp
    terms = entry_terms(sl.log_softmax(-1), tl.log_softmax(-1), 0.5)
    # a cap between middle order statistics of the per-position maxima (entry) or sums (token)
    vals = (terms.amax(-1) if clip_mode == "entry" else terms.sum(-1)).sort().values
    clip = float(vals[N // 2 - 1] + vals[N // 2]) / 2
    targets = torch.randint(0, V, (N,), generator=torch.Generator().manual_seed(0))
    opts = LossOptions(beta=0.5, clip=clip, clip_mode=clip_mode, chunk_size=6, temperature=temp,
                       diagnostics=True)
    _, stats = chunked_jsd_from_hidden(s_h, t_h, s_head, t_head, opts, targets=targets)
    div = terms.sum(-1)
    torch.testing.assert_close(stats.divergence.double(), div, rtol=1e-5, atol=1e-6)
    if clip_mode == "entry":
        anyc = (terms > clip).any(-1)
        removed = (terms - clip).clamp(min=0).sum(-1)
    else:
        anyc = div > clip
        removed = (div - clip).clamp(min=0)
    assert 0 < int(anyc.sum()) < N
    assert torch.equal(stats.any_clipped, anyc)
    torch.testing.assert_close(stats.removed.double(), removed, rtol=1e-4, atol=1e-6)
    lr = tl.log_softmax(-1).gather(1, targets[:, None]) - sl.log_softmax(-1).gather(1, targets[:, None])
    torch.testing.assert_close(stats.target_logratio.double(), lr.squeeze(1), rtol=1e-5, atol=1e-5)
    raise_ref = (tl.softmax(-1) - sl.softmax(-1)).sum(0)
    torch.testing.assert_close(stats.raised.double(), raise_ref, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- one contract, one statistics type
@pytest.mark.parametrize("impl", ["naive", "fused", "checkpointed"])
def test_every_implementation_returns_loss_stats(impl):
    """Same arguments, same LossStats; only the fused loss fills the signal diagnostics (others leave None)."""
    from rgsd.method.losses import LossStats
    from rgsd.method.sharded_loss import checkpointed_jsd_from_hidden

    fn = {"naive": naive_jsd_from_hidden, "fused": chunked_jsd_from_hidden,
          "checkpointed": checkpointed_jsd_from_hidden}[impl]
    s_h, t_h, s_head, t_head = _setup(7)
    targets = torch.randint(0, V, (N,), generator=torch.Generator().manual_seed(1))
    opts = LossOptions(beta=0.5, clip=0.01, clip_mode="entry", top_k=None, chunk_size=5, temperature=1.0,
                       diagnostics=True)
    loss, stats = fn(s_h, t_h, s_head, t_head, opts, targets=targets)
    ref, _ = naive_jsd_from_hidden(s_h, t_h, s_head, t_head, LossOptions(clip=0.01))
    assert isinstance(stats, LossStats) and stats.n_tokens == N
    torch.testing.assert_close(loss.detach(), ref.detach(), rtol=1e-5, atol=1e-6)
    assert float(stats.clipped_fraction) == pytest.approx(float(stats.clipped_fraction_sum) / N)
    assert stats.has_diagnostics == (impl == "fused")
    if impl == "fused":
        assert stats.divergence.shape == (N,) and stats.raised.shape == (V,) and stats.target_logratio.shape == (N,)


@pytest.mark.parametrize("bad,match", [({"clip": 0.0}, "clip"), ({"clip": float("inf")}, "clip"),
                                       ({"clip_mode": "vocab"}, "clip_mode"), ({"temperature": 0}, "temperature"),
                                       ({"chunk_size": 0}, "chunk_size"), ({"impl": "magic"}, "impl")])
def test_loss_options_are_validated_when_built(bad, match):
    with pytest.raises(ValueError, match=match):
        LossOptions(**bad)
