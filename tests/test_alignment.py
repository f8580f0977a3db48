"""Teacher/student alignment: same response ids on both sides, slices that padding cannot shift."""

from __future__ import annotations

import torch

from rgsd.data.schema import Criterion, Example
from rgsd.method.alignment import align, gather_hidden, loss_mask, thinking_end_id
from rgsd.method.chunked_loss import chunked_jsd_from_hidden
from rgsd.method.hidden import final_hidden
from rgsd.method.losses import LossOptions
from rgsd.method.rollout import chat_prompt_ids
from rgsd.method.teacher_prompt import student_messages, teacher_messages
from rgsd.models import load_model


def _examples() -> list[Example]:
    return [
        Example("a", [{"role": "user", "content": "How do I boil an egg?"}],
                [Criterion("c1", "Gives a cooking time in minutes", 3.0)]),
        Example("b", [{"role": "system", "content": "Be brief."},
                      {"role": "user", "content": "Name a good habit for studying every evening after school."}],
                [Criterion("c1", "Mentions spaced repetition", 2.0),
                 Criterion("c2", "Tells the student to skip sleep", 4.0, "negative")]),
    ]


def test_response_logits_match_unpadded_reference(tiny_model_dir):
    model, tok = load_model(str(tiny_model_dir))
    exs = _examples()
    s_prompts = [chat_prompt_ids(tok, student_messages(e)) for e in exs]
    t_prompts = [chat_prompt_ids(tok, teacher_messages(e)) for e in exs]
    responses = [[100, 200, 300, tok.eos_token_id], [5, 6, tok.eos_token_id]]
    masks = [[True] * len(r) for r in responses]
    ab = align(s_prompts, t_prompts, responses, masks, tok.pad_token_id)
    assert ab.n_tokens == 7
    assert ab.targets.tolist() == responses[0] + responses[1]
    head = model.get_output_embeddings()
    with torch.no_grad():
        for side, prompts in ((ab.student, s_prompts), (ab.teacher, t_prompts)):
            got = head(gather_hidden(final_hidden(model, side.input_ids, side.attention_mask), side.positions))
            # reference: each sequence alone, no padding, logits sliced at [len(p) - 1, len(p) - 1 + len(r))
            ref = torch.cat([
                model(input_ids=torch.tensor([p + r])).logits[0, len(p) - 1 : len(p) - 1 + len(r)]
                for p, r in zip(prompts, responses)
            ])
            torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)


def test_empty_rubric_teacher_equals_student(tiny_model_dir):
    model, tok = load_model(str(tiny_model_dir))
    ex = Example("e", [{"role": "user", "content": "Tips for a long flight?"}], [])
    s = chat_prompt_ids(tok, student_messages(ex))
    t = chat_prompt_ids(tok, teacher_messages(ex))
    assert s == t
    ab = align([s], [t], [[11, 12, 13]], [[True] * 3], tok.pad_token_id)
    with torch.no_grad():
        hs = gather_hidden(final_hidden(model, ab.student.input_ids, ab.student.attention_mask), ab.student.positions)
        ht = gather_hidden(final_hidden(model, ab.teacher.input_ids, ab.teacher.attention_mask), ab.teacher.positions)
    head = model.get_output_embeddings()
    assert torch.equal(torch.log_softmax(head(hs), -1), torch.log_softmax(head(ht), -1))
    loss, _ = chunked_jsd_from_hidden(hs, ht, head, head, LossOptions(beta=0.5))
    assert abs(float(loss.detach())) < 1e-5  # fp32 rounding over a 49k vocabulary


def test_rubric_changes_teacher_only_in_prompt():
    ex = _examples()[1]
    t = teacher_messages(ex)
    assert t[0] == ex.prompt[0]  # the user's system prompt untouched
    assert t[1]["content"].startswith(ex.prompt[1]["content"])
    assert "Avoid this: Tells the student to skip sleep" in t[1]["content"]
    assert "4" not in t[1]["content"].split(ex.prompt[1]["content"])[1]  # weights hidden by default
    sys_t = teacher_messages(ex, placement="system")
    assert sys_t[1:] == ex.prompt[1:] and "Mentions spaced repetition" in sys_t[0]["content"]
    assert student_messages(ex) == ex.prompt


def test_thinking_mask():
    think = 99
    assert loss_mask([1, 2, 3], None) == [True, True, True]
    assert loss_mask([1, think, 3, 4], think) == [False, False, True, True]
    assert loss_mask([1, 2, 3], think) is None  # never closed: dropped from the loss


def test_thinking_token_resolution(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    assert thinking_end_id(tok) is None  # SmolLM2 has no </think> token
    tok.add_special_tokens({"additional_special_tokens": ["<think>", "</think>"]})
    assert thinking_end_id(tok) == tok.convert_tokens_to_ids("</think>")
