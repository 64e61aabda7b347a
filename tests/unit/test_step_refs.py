"""domain.step_refs: references to earlier steps' outputs, checked and resolved (pure)."""

import pytest

from domain.step_refs import RefError, problems, referenced_ids, refs_in, resolve

OUTPUTS = {"fetch": {"status": 200, "body": {"items": [{"name": "a"}, {"name": "b"}]}}}


def ref(target: str) -> dict:
    return {"$ref": target}


def test_a_reference_resolves_keys_and_list_indexes_and_leaves_the_input_as_it_was():
    data = {"first": ref("steps.fetch.output.body.items.1.name"), "all": ref("steps.fetch.output"),
            "list": [ref("steps.fetch.output.status"), "plain"], "n": 3}  # fmt: skip
    resolved = resolve(data, OUTPUTS)
    assert resolved == {"first": "b", "all": OUTPUTS["fetch"], "list": [200, "plain"], "n": 3}
    assert data["first"] == ref("steps.fetch.output.body.items.1.name")  # a copy


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("steps.fetch.output.body.missing", "no 'missing' in the output (it is an object"),
        ("steps.fetch.output.body.items.5", "no '5' in the output (it is a list of 2)"),
        ("steps.fetch.output.status.x", "no 'x' in the output (it is int)"),
        ("steps.other.output", "cannot be resolved"),
    ],
)
def test_what_the_output_does_not_have_is_a_ref_error_naming_it(target, message):
    with pytest.raises(RefError, match="input.x: reference") as refused:
        resolve({"x": ref(target)}, OUTPUTS)
    assert message in str(refused.value) and target in str(refused.value)


def test_problems_name_every_bad_reference_with_its_place():
    steps = [
        ("a", {"x": ref("steps.b.output")}),  # later
        ("b", {"y": [ref("steps.zz.output")], "z": ref("nonsense")}),  # unknown, malformed
        ("b", {}),  # duplicate id
        (None, {"ok": ref("steps.a.output.text")}),
    ]
    found = problems(steps)
    assert found == [
        "steps.2.id: 'b' is already the id of step 1",
        "steps.0.input.x: reference 'steps.b.output' names a later step (step 1); only earlier "
        "steps' outputs can be used",
        "steps.1.input.y.0: reference 'steps.zz.output' names no step (step ids: a, b)",
        "steps.1.input.z: malformed reference 'nonsense' (expected "
        '{"$ref": "steps.<id>.output[.<key>...]"})',
    ]
    assert referenced_ids([s[1] for s in steps]) == {"a", "b", "zz"}
    assert refs_in({"plain": {"$refs": "not one"}}) == []


def test_the_cli_step_flag_takes_an_id():
    from cli.runs import parse_step

    assert parse_step('greet=echo:{"text":"hi"}') == {
        "id": "greet", "skill": "echo", "input": {"text": "hi"}}  # fmt: skip
    assert parse_step('template:{"template":"a=b"}') == {
        "skill": "template", "input": {"template": "a=b"}}  # fmt: skip
    assert parse_step("echo") == {"skill": "echo", "input": {}}
