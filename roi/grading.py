"""From a call's raw output to scored items: parse each answer back to its query, score it, and flag
interference (answer swaps within the call, answers that fall in another task's answer space)."""

from __future__ import annotations

from dataclasses import dataclass

from roi.pilot import LoadedPilot
from roi.prompts import PromptCall, parse_answers
from roi.scoring import normalize, score
from roi.store import ItemRow


@dataclass(frozen=True)
class AnswerSpaces:
    """Per task, the normalised answers it can give: its choices, or every output in its data."""

    spaces: dict[str, frozenset[str]]

    @classmethod
    def of(cls, pilot: LoadedPilot) -> AnswerSpaces:
        spaces = {}
        for task in pilot.tasks:
            outputs = task.spec.scorer.answer_space([e.output for e in task.examples + task.eval_items])
            spaces[task.spec.name] = frozenset(normalize(o, strip_punctuation=True) for o in outputs)
        return cls(spaces)

    def foreign_task(self, answer: str, own: str) -> str | None:
        """Another task whose answer space holds `answer` when its own does not."""
        key = normalize(answer, strip_punctuation=True)
        if key in self.spaces.get(own, frozenset()):
            return None
        return next((t for t, s in self.spaces.items() if t != own and key in s), None)


def grade_call(
    pilot: LoadedPilot, model: str, call: PromptCall, call_id: str, text: str, spaces: AnswerSpaces
) -> list[ItemRow]:
    answers = parse_answers(call, text)
    rows = []
    for position, (query, answer) in enumerate(zip(call.queries, answers, strict=True), start=1):
        task = pilot.task(query.task)
        correct = answer is not None and score(answer, query.item.output, task.spec.scorer).correct
        swap = foreign = None
        if answer is not None and not correct:
            swap = _swap_partner(pilot, call, position, answer)
            foreign = spaces.foreign_task(answer, query.task)
        rows.append(
            _item_row(model, call, call_id, position, answer, correct=correct, swap_with=swap, other_task_space=foreign)
        )
    return rows


def failed_call_items(model: str, call: PromptCall, call_id: str) -> list[ItemRow]:
    """The items of a call that failed: no answer, counted wrong (its call row holds the error), so a
    mixed call that fails loses every item it held instead of leaving the comparison."""
    return [_item_row(model, call, call_id, position, None) for position in range(1, len(call.queries) + 1)]


def _item_row(
    model: str,
    call: PromptCall,
    call_id: str,
    position: int,
    answer: str | None,
    *,
    correct: bool = False,
    swap_with: str | None = None,
    other_task_space: str | None = None,
) -> ItemRow:
    query = call.queries[position - 1]
    return ItemRow(
        call_id=call_id,
        model=model,
        mode=call.mode,
        task=query.task,
        item_id=query.item.id,
        position=position,
        input=query.item.input,
        gold=query.item.output,
        answer=answer,
        parsed=answer is not None,
        correct=correct,
        swap_with=swap_with,
        other_task_space=other_task_space,
    )


def _swap_partner(pilot: LoadedPilot, call: PromptCall, position: int, answer: str) -> str | None:
    """The task of another query in the same call whose gold answer this query received."""
    for other_position, other in enumerate(call.queries, start=1):
        if other_position == position:
            continue
        if score(answer, other.item.output, pilot.task(other.task).spec.scorer).correct:
            return other.task
    return None
