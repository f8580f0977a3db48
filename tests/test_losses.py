"""rgsd.method.losses: the direct generalized JSD against an independent float64 brute force (plain Python loops)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from rgsd.method.losses import generalized_jsd, jsd_per_token

BETAS = (0.0, 0.3, 0.5, 1.0)


# ---------------------------------------------------------------- brute force (pure Python floats, no torch)
def _softmax(xs: list[float]) -> list[float]:
    top = max(xs)
    ex = [math.exp(x - top) for x in xs]
    tot = sum(ex)
    return [e / tot for e in ex]


def _bf_terms(s: list[float], t: list[float], beta: float, top_k: int | None) -> list[float]:
    """Per-entry terms l_v straight from the definitions (KL endpoints / mixture)."""
    if top_k is not None:
        ids = sorted(range(len(t)), key=lambda v: -t[v])[:top_k]
        s, t = [s[i] for i in ids], [t[i] for i in ids]
    p, q = _softmax(s), _softmax(t)
    out = []
    for pv, qv in zip(p, q):
        if beta == 0.0:
            out.append(qv * math.log(qv / pv))
        elif beta == 1.0:
            out.append(pv * math.log(pv / qv))
        else:
            mv = beta * qv + (1 - beta) * pv
            out.append(beta * qv * math.log(qv / mv) + (1 - beta) * pv * math.log(pv / mv))
    return out


def _bf_loss(s, t, beta, clip, mode, top_k) -> float:
    terms = _bf_terms(s, t, beta, top_k)
    if clip is None:
        return sum(terms)
    if mode == "entry":
        return sum(min(x, clip) for x in terms)
    return min(sum(terms), clip)


def _bf_grad(s, t, beta, clip, mode, top_k, eps=1e-6) -> list[float]:
    """Central finite differences of the brute-force loss w.r.t. the student logits of one position."""
    grad = []
    for v in range(len(s)):
        up, dn = list(s), list(s)
        up[v] += eps
        dn[v] -= eps
        grad.append(
            (_bf_loss(up, t, beta, clip, mode, top_k) - _bf_loss(dn, t, beta, clip, mode, top_k)) / (2 * eps)
        )
    return grad


def _pick_clip(values: list[float]) -> float:
    """A cap strictly between two middle order statistics of ``values`` (so it clips some, not all, and no
    value sits on the kink)."""
    vals = sorted(values)
    i = len(vals) // 2
    return (vals[i - 1] + vals[i]) / 2


def _logits(shape, seed, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g) * scale


# ---------------------------------------------------------------- value and gradient vs brute force
@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize("clip_mode", [None, "entry", "token"])
@pytest.mark.parametrize("top_k", [None, 4])
def test_matches_bruteforce(beta, clip_mode, top_k):
    b, t_len, vocab = 2, 5, 9
    s = _logits((b, t_len, vocab), 1)
    t = _logits((b, t_len, vocab), 2)
    mask = torch.ones(b, t_len, dtype=torch.bool)
    mask[0, 1] = mask[1, 3] = mask[1, 4] = False
    rows = [(i, j) for i in range(b) for j in range(t_len)]
    kept = [(i, j) for (i, j) in rows if mask[i, j]]
    sl = {r: s[r].double().tolist() for r in rows}
    tl = {r: t[r].double().tolist() for r in rows}

    clip = None
    if clip_mode == "entry":
        # among the positive entries: the cap must be > 0 (KL-endpoint entries can be negative)
        clip = _pick_clip([x for r in kept for x in _bf_terms(sl[r], tl[r], beta, top_k) if x > 0])
    elif clip_mode == "token":
        clip = _pick_clip([sum(_bf_terms(sl[r], tl[r], beta, top_k)) for r in kept])
    mode = clip_mode or "entry"

    student = s.clone().requires_grad_(True)
    value = generalized_jsd(student, t, mask=mask, beta=beta, clip=clip, clip_mode=mode, top_k=top_k)
    value.backward()

    expected = sum(_bf_loss(sl[r], tl[r], beta, clip, mode, top_k) for r in kept) / len(kept)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(expected, rel=1e-5, abs=1e-6)

    for r in rows:
        got = student.grad[r]
        if not mask[r]:
            assert torch.equal(got, torch.zeros(vocab)), "masked position received gradient"
            continue
        want = torch.tensor(_bf_grad(sl[r], tl[r], beta, clip, mode, top_k), dtype=torch.float32) / len(kept)
        torch.testing.assert_close(got, want, rtol=1e-3, atol=2e-6)

    loss, frac = jsd_per_token(s, t, beta, clip, mode, top_k)
    assert loss.shape == frac.shape == (b, t_len)
    if clip is None:
        assert torch.all(frac == 0)
    else:
        share = frac[mask].mean().item()
        assert 0.0 < share < 1.0
        # The clipped fraction counts exactly the brute-force terms (or sums) above the cap.
        for r in kept:
            terms = _bf_terms(sl[r], tl[r], beta, top_k)
            want = sum(x > clip for x in terms) / len(terms) if mode == "entry" else float(sum(terms) > clip)
            assert frac[r].item() == pytest.approx(want, abs=1e-6)


def test_float64_input_is_tight():
    s = _logits((4, 11), 3).double()
    t = _logits((4, 11), 4).double()
    value = generalized_jsd(s, t, beta=0.3)
    expected = sum(_bf_loss(s[i].tolist(), t[i].tolist(), 0.3, None, "entry", None) for i in range(4)) / 4
    assert value.dtype == torch.float64
    assert value.item() == pytest.approx(expected, rel=1e-12)


def test_hand_computed_example():
    # p = (1/2, 1/2), q = (3/4, 1/4), m = (5/8, 3/8): 0.5 * KL(q||m) + 0.5 * KL(p||m) = 0.0338220...
    s = torch.tensor([[0.0, 0.0]])
    t = torch.tensor([[math.log(3.0), 0.0]])
    assert generalized_jsd(s, t, beta=0.5).item() == pytest.approx(0.03382207, abs=1e-7)
    # forward KL(q||p) = .75 ln 1.5 + .25 ln .5 ; reverse KL(p||q) = .5 ln(2/3) + .5 ln 2
    assert generalized_jsd(s, t, beta=0.0).item() == pytest.approx(
        0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    )
    assert generalized_jsd(s, t, beta=1.0).item() == pytest.approx(
        0.5 * math.log(2 / 3) + 0.5 * math.log(2.0)
    )


# ---------------------------------------------------------------- properties
def test_endpoints_equal_kl_div():
    s = _logits((3, 6, 20), 5)
    t = _logits((3, 6, 20), 6)
    log_p, log_q = F.log_softmax(s, -1), F.log_softmax(t, -1)
    # kl_div(input, target) = sum target * (log target - input)
    fwd = F.kl_div(log_p, log_q, reduction="none", log_target=True).sum(-1).mean()
    rev = F.kl_div(log_q, log_p, reduction="none", log_target=True).sum(-1).mean()
    torch.testing.assert_close(generalized_jsd(s, t, beta=0.0), fwd)
    torch.testing.assert_close(generalized_jsd(s, t, beta=1.0), rev)


@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize("clip,mode", [(None, "entry"), (0.01, "entry"), (0.01, "token")])
@pytest.mark.parametrize("top_k", [None, 3])
def test_zero_when_equal(beta, clip, mode, top_k):
    s = _logits((4, 12), 7).requires_grad_(True)
    value = generalized_jsd(s, s.detach().clone(), beta=beta, clip=clip, clip_mode=mode, top_k=top_k)
    value.backward()
    assert abs(value.item()) < 1e-7
    assert s.grad.abs().max().item() < 1e-7


def test_teacher_gets_no_grad_and_mask_hides_garbage():
    s = _logits((2, 3, 8), 8).requires_grad_(True)
    t = _logits((2, 3, 8), 9).requires_grad_(True)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    base = generalized_jsd(s, t, mask=mask)
    base.backward()
    assert t.grad is None
    # Changing the masked positions' logits must not change the value.
    s2, t2 = s.detach().clone(), t.detach().clone()
    s2[0, 2] += 50.0
    t2[1, 1:] -= 30.0
    assert generalized_jsd(s2, t2, mask=mask).item() == pytest.approx(base.item(), rel=1e-6)
    # No unmasked position at all: zero, and still differentiable.
    empty = generalized_jsd(s, t, mask=torch.zeros(2, 3, dtype=torch.bool))
    assert empty.item() == 0.0 and empty.requires_grad


def test_symmetric_at_half():
    s, t = _logits((5, 10), 10), _logits((5, 10), 11)
    torch.testing.assert_close(generalized_jsd(s, t, beta=0.5), generalized_jsd(t, s, beta=0.5))
    assert 0 < generalized_jsd(s, t, beta=0.5).item() <= math.log(2)


def test_bf16_input_gives_fp32_accuracy():
    s = _logits((4, 7, 300), 12).bfloat16()
    t = _logits((4, 7, 300), 13).bfloat16()
    for beta in BETAS:
        got = generalized_jsd(s, t, beta=beta)
        assert got.dtype == torch.float32
        want = generalized_jsd(s.double(), t.double(), beta=beta)  # same bf16-rounded values, float64 math
        assert got.item() == pytest.approx(want.item(), rel=1e-5)
    sg = s.clone().requires_grad_(True)
    generalized_jsd(sg, t).backward()
    assert sg.grad.dtype == torch.bfloat16


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"beta": 1.5}, "beta"),
        ({"clip": 0.0}, "clip"),
        ({"clip_mode": "vocab"}, "clip_mode"),
        ({"top_k": 0}, "top_k"),
        ({"top_k": 99}, "top_k"),
        ({"mask": torch.ones(3, dtype=torch.bool)}, "mask shape"),
    ],
)
def test_bad_options(kwargs, match):
    s, t = _logits((2, 5), 14), _logits((2, 5), 15)
    with pytest.raises(ValueError, match=match):
        generalized_jsd(s, t, **kwargs)


def test_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        jsd_per_token(torch.zeros(2, 5), torch.zeros(2, 6))


# ---------------------------------------------------------------- loss temperature
@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize("temperature", [0.7, 1.6])
@pytest.mark.parametrize("clip_mode", [None, "entry"])
def test_temperature_matches_bruteforce_on_scaled_logits(beta, temperature, clip_mode):
    """At T the loss is the brute force on logits / T; its gradient w.r.t. the raw logits is 1/T times that."""
    n, vocab = 6, 9
    s, t = _logits((n, vocab), 11), _logits((n, vocab), 12)
    sl = [[x / temperature for x in row] for row in s.double().tolist()]
    tl = [[x / temperature for x in row] for row in t.double().tolist()]
    clip = None
    if clip_mode == "entry":
        clip = _pick_clip([x for i in range(n) for x in _bf_terms(sl[i], tl[i], beta, None) if x > 0])
    student = s.clone().requires_grad_(True)
    value = generalized_jsd(student, t, beta=beta, clip=clip, clip_mode="entry", temperature=temperature)
    value.backward()
    expected = sum(_bf_loss(sl[i], tl[i], beta, clip, "entry", None) for i in range(n)) / n
    assert value.item() == pytest.approx(expected, rel=1e-5, abs=1e-6)
    for i in range(n):
        want = torch.tensor(_bf_grad(sl[i], tl[i], beta, clip, "entry", None)) / temperature / n
        torch.testing.assert_close(student.grad[i], want.float(), rtol=1e-3, atol=2e-6)
    # and the temperature really changes the value (the test could fail)
    assert value.item() != pytest.approx(generalized_jsd(s, t, beta=beta, clip=clip).item(), rel=1e-3)


def test_bad_temperature():
    s = _logits((2, 5), 1)
    with pytest.raises(ValueError, match="loss temperature"):
        generalized_jsd(s, s, temperature=0.0)
