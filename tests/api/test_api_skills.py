"""GET /skills: the catalog over HTTP, behind an API key like every route; and a run's steps
checked against it before anything starts."""

from db.models import Run
from domain.skill_discovery import installed_catalog
from tests.helpers import count


async def test_the_catalog_lists_every_installed_skill_with_its_schema(api, tenant_keys):
    keys = tenant_keys("TENANT_USER")
    response = await api.get("/skills", headers=keys.headers["TENANT_USER"])
    assert response.status_code == 200, response.text
    listed = {s["name"]: s for s in response.json()}
    assert sorted(listed) == installed_catalog().names
    assert {"echo", "http", "llm", "template", "word_count", "slugify"} <= set(listed)
    word_count = listed["word_count"]
    assert word_count == {
        "name": "word_count",
        "description": "Counts the words of a text and names the commonest.",
        "version": "0.1.0",
        "source": "governed-runs-example-skills",
        "input_schema": installed_catalog().entries["word_count"].skill.input.model_json_schema(),
        "cost_model": {"kind": "fixed", "amount": "0.00002", "reservation": None},
        "calls_out": False,
        "timeout_seconds": 10.0,
    }
    assert word_count["input_schema"]["properties"]["top"]["maximum"] == 50
    assert listed["echo"]["source"] == "built-in"
    assert listed["llm"]["cost_model"]["kind"] == "metered" and listed["llm"]["calls_out"]


async def test_the_catalog_needs_an_api_key(api):
    assert (await api.get("/skills")).status_code == 401
    assert (await api.get("/skills", headers={"X-API-Key": "nope"})).status_code == 401


async def test_a_plugin_skills_input_is_checked_before_the_run_starts(api, sessions,
                                                                      tenant_keys):  # fmt: skip
    keys = tenant_keys()
    body = {"steps": [{"skill": "word_count", "input": {"text": "x", "top": 99}}]}
    response = await api.post("/runs", json=body, headers=keys.admin)
    assert response.status_code == 422, response.text
    assert "input for skill 'word_count': top: Input should be less than or equal to 50" in (
        response.json()["error"])  # fmt: skip
    assert [d["loc"] for d in response.json()["detail"]] == [["body", "steps", 0]]
    assert count(sessions, Run, tenant_id=keys.tenant) == 0
