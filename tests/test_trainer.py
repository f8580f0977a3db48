"""RGSD training steps on CPU with a tiny model on the real tokenizer."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import DEMO_TRAIN
from safetensors.torch import load_file

from rgsd.data.loaders import load_examples
from rgsd.method.alignment import align, gather_hidden
from rgsd.method.chunked_loss import chunked_jsd_from_hidden
from rgsd.method.hidden import final_hidden
from rgsd.method.losses import LossOptions
from rgsd.method.rollout import chat_prompt_ids
from rgsd.method.student_loss import StudentLoss
from rgsd.method.teacher_prompt import student_messages, teacher_messages
from rgsd.models import load_model
from rgsd.options import build as build_config
from rgsd.train.config import RGSDConfig
from rgsd.train.setup import load_policy
from rgsd.train.teacher import Teacher, load_frozen_teacher
from rgsd.train.trainer import train


def _cfg(tmp_path, model_dir, **kw) -> RGSDConfig:
    base = dict(data=str(DEMO_TRAIN), model=str(model_dir), max_steps=2, per_device_batch_size=2,
                max_new_tokens=8, output_dir=str(tmp_path / "run"), progress=False, learning_rate=1e-3,
                warmup_ratio=0.0)
    base.update(kw)
    return build_config(RGSDConfig, None, base)


@pytest.mark.parametrize("use_lora", [True, False])
def test_two_steps_change_student_not_teacher(tmp_path, tiny_model_dir, use_lora):
    cfg = _cfg(tmp_path, tiny_model_dir, use_lora=use_lora)
    out = train(cfg)
    initial, _ = load_model(str(tiny_model_dir))
    trained, _ = load_model(str(out / "final"))  # LoRA: base + adapter merged
    init_sd, new_sd = initial.state_dict(), trained.state_dict()
    changed = [k for k in init_sd if not torch.equal(init_sd[k], new_sd[k])]
    assert changed, "training did not change the student"
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2]
    assert all(m["judge_calls"] == 0 and m["scored_tokens"] > 0 for m in metrics)
    cost = json.loads((out / "costs.json").read_text())
    assert cost["rollouts"] == 4 and cost["teacher_scored_tokens"] == sum(m["scored_tokens"] for m in metrics)


@pytest.mark.parametrize("use_lora", [True, False])
def test_teacher_stays_bit_identical(tiny_model_dir, use_lora):
    cfg = build_config(RGSDConfig, None, dict(data="x", model=str(tiny_model_dir), use_lora=use_lora))
    model, tok = load_policy(cfg)
    frozen = None if use_lora else load_frozen_teacher(str(tiny_model_dir), torch.float32)
    teacher = Teacher(model, "frozen", use_lora, frozen_model=frozen)
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    mask = torch.ones_like(ids)
    before = teacher.hidden(model, ids, mask).clone()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    if use_lora:  # LoRA B starts at zero: give the adapter weights something to change
        for n, p in model.named_parameters():
            if "lora_B" in n:
                torch.nn.init.normal_(p, std=0.1)
    for _ in range(2):
        final_hidden(model, ids, mask).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
    assert not torch.equal(final_hidden(model, ids, mask), before)  # the student moved
    assert torch.equal(teacher.hidden(model, ids, mask), before)  # the teacher did not, bit for bit


def test_loss_decreases_on_fixed_batch(tiny_model_dir):
    cfg = build_config(RGSDConfig, None, dict(data="x", model=str(tiny_model_dir), use_lora=False))
    model, tok = load_policy(cfg)
    teacher = Teacher(model, "frozen", use_lora=False,
                      frozen_model=load_frozen_teacher(str(tiny_model_dir), torch.float32))
    examples = load_examples(str(DEMO_TRAIN)).examples[:3]
    s = [chat_prompt_ids(tok, student_messages(e)) for e in examples]
    t = [chat_prompt_ids(tok, teacher_messages(e)) for e in examples]
    responses = [[100 + i, 200 + i, 300, tok.eos_token_id] for i in range(3)]
    ab = align(s, t, responses, [[True] * 4] * 3, tok.pad_token_id)
    t_hidden = gather_hidden(teacher.hidden(model, ab.teacher.input_ids, ab.teacher.attention_mask),
                             ab.teacher.positions)
    wrapper = StudentLoss(model, cfg.loss_options())
    opt = torch.optim.AdamW([p for p in wrapper.parameters() if p.requires_grad], lr=1e-4)
    losses = []
    for _ in range(5):
        loss, _ = wrapper(ab.student.input_ids, ab.student.attention_mask, ab.student.positions, t_hidden,
                          teacher.head(model))
        (loss / ab.n_tokens).backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss.detach()) / ab.n_tokens)
    assert losses[0] > 0
    assert losses[-1] < 0.5 * losses[0], losses


def test_gradient_accumulation_matches_one_big_batch(tmp_path, tiny_model_dir):
    """Same global batch (4 prompts): 1 x 4 and 2 micro-batches x 2 give the same weights (greedy rollouts)."""
    common = dict(use_lora=False, temperature=0.0, max_steps=2)
    a = train(_cfg(tmp_path / "a", tiny_model_dir, per_device_batch_size=4, **common))
    b = train(_cfg(tmp_path / "b", tiny_model_dir, per_device_batch_size=2, gradient_accumulation_steps=2, **common))
    wa, wb = load_file(a / "final" / "model.safetensors"), load_file(b / "final" / "model.safetensors")
    init = load_model(str(tiny_model_dir))[0].state_dict()
    moved = max((wa[k] - init[k]).abs().max().item() for k in wa)
    diff = max((wa[k] - wb[k]).abs().max().item() for k in wa)
    assert moved > 1e-4 and diff < 1e-3 * moved, (moved, diff)


def test_long_teacher_prompt_is_skipped_or_fatal(tmp_path, tiny_model_dir):
    from rgsd.train.trainer import tokenize_examples

    cfg = _cfg(tmp_path, tiny_model_dir, max_prompt_tokens=120)
    _, tok = load_model(str(tiny_model_dir))
    examples = load_examples(str(DEMO_TRAIN)).examples
    items, skipped = tokenize_examples(examples, tok, cfg)
    assert skipped > 0 and len(items) + skipped == len(examples)
    assert all(len(it["teacher_ids"]) <= 120 for it in items)  # kept prompts are whole, never cut
    cfg_err = _cfg(tmp_path, tiny_model_dir, max_prompt_tokens=120, on_long_prompt="error")
    with pytest.raises(ValueError, match="max_prompt_tokens"):
        tokenize_examples(examples, tok, cfg_err)


def test_chunk_size_does_not_change_training_loss(tiny_model_dir):
    model, tok = load_model(str(tiny_model_dir))
    h_s = torch.randn(37, model.config.hidden_size, requires_grad=True)
    h_t = torch.randn(37, model.config.hidden_size)
    head = model.get_output_embeddings()
    a, _ = chunked_jsd_from_hidden(h_s, h_t, head, head, LossOptions(clip=0.05, chunk_size=8))
    b, _ = chunked_jsd_from_hidden(h_s, h_t, head, head, LossOptions(clip=0.05, chunk_size=64))
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("top_k", [None, 5])
def test_checkpointed_loss_matches_fused(tiny_model_dir, top_k):
    """The sharding-safe path (head called as a module, chunks recomputed) equals the fused path."""
    from rgsd.method.sharded_loss import checkpointed_jsd_from_hidden

    model, _ = load_model(str(tiny_model_dir))
    head = model.get_output_embeddings()
    h_t = torch.randn(29, model.config.hidden_size)
    h_a = torch.randn(29, model.config.hidden_size, requires_grad=True)
    h_b = h_a.detach().clone().requires_grad_(True)
    opts = LossOptions(clip=0.05, top_k=top_k, chunk_size=8)
    la, _ = chunked_jsd_from_hidden(h_a, h_t, head, head, opts)
    la.backward()
    wa = head.weight.grad.clone()
    head.weight.grad = None
    lb, _ = checkpointed_jsd_from_hidden(h_b, h_t, head, head, opts)
    lb.backward()
    torch.testing.assert_close(la, lb, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h_a.grad, h_b.grad, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(wa, head.weight.grad, rtol=1e-4, atol=1e-7)


def test_step_indices_cover_each_epoch_once_and_depend_only_on_step():
    from rgsd.data.order import step_indices

    order = [i for step in range(5) for i in step_indices(step, 10, 4, seed=3)]
    assert sorted(order[:10]) == list(range(10)) and sorted(order[10:20]) == list(range(10))
    assert step_indices(3, 10, 4, seed=3) == order[12:16]  # same answer whatever came before (resume)
    assert step_indices(0, 10, 4, seed=4) != step_indices(0, 10, 4, seed=3)


def _modules_after_import(module: str, prefixes: tuple[str, ...]) -> list[str]:
    import subprocess
    import sys

    code = f"import sys, {module}; print([m for m in sys.modules if m.startswith({prefixes!r})])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return eval(out)


def test_layers_train_reads_no_evaluator_and_grpo_reads_no_train():
    """The method sits below both trainers: rgsd.train needs no evaluator, and rgsd.grpo's trainer no module of
    rgsd.train (its config still borrows rgsd.train.config's argument groups)."""
    assert _modules_after_import("rgsd.train.trainer", ("rgsd.evaluate.", "rgsd.diagnose", "rgsd.demo")) == []
    assert set(_modules_after_import("rgsd.grpo.trainer", ("rgsd.train.",))) <= {"rgsd.train.config"}
