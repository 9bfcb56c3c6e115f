"""The shipped n8n workflow, checked as a graph (no n8n needed: runs everywhere).

- the JSON parses, node names are unique and every connection names a node that exists;
- every node's type and typeVersion exists in n8n 1.123.81 (n8n/node_types_1.123.81.json, written
  by n8n/catalog.py from the installed engine);
- the webhook checks the hub's secret header; every action of the envelope has a branch out of
  the action Switch, and its fallback answers 422;
- every path from the Switch reaches the callback (an HTTP Request posting to the envelope's
  callback_url), except a path that answers the hub's delivery itself: an error status (the
  hub's outbox retries or dead-letters it) or the duplicate guard's "proceed: false";
- every error output reaches a `failed` callback;
- credentials are only those of n8n/credentials.example.json, and no value looks like a secret.

The walker is proven on small sample graphs first, so a check that passes on the real file is
known to be able to fail.
"""

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kommo_hub.clients.n8n import SECRET_HEADER
from kommo_hub.outbox.services import N8N_ACTIONS

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "n8n" / "kommo_hub.workflow.json"
CREDENTIALS = ROOT / "n8n" / "credentials.example.json"
N8N_VERSION = "1.123.81"
CATALOG = ROOT / "n8n" / f"node_types_{N8N_VERSION}.json"
ENGINE = ROOT / "var" / "n8n-engine"

SWITCH = "n8n-nodes-base.switch"
IF = "n8n-nodes-base.if"
HTTP = "n8n-nodes-base.httpRequest"
RESPOND = "n8n-nodes-base.respondToWebhook"
WEBHOOK = "n8n-nodes-base.webhook"

# What a leaked secret looks like (the values of credentials stay in n8n, never in the JSON).
SECRET_PATTERNS = {
    "OpenAI key": re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}"),
    "Meta access token": re.compile(r"\bEAA[A-Za-z0-9]{30,}"),
    "JWT": re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\."),
    "bearer token": re.compile(r"Bearer\s+(?![<{])[A-Za-z0-9._~+/-]{20,}"),
    "AWS key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "Slack token": re.compile(r"\bxox[abpr]-[A-Za-z0-9-]{10,}"),
    "long token": re.compile(r"(?<![A-Za-z0-9_$.])[A-Za-z0-9_-]{48,}(?![A-Za-z0-9_(])"),
}


# --- the walker ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Edge:
    source: str
    output: int
    target: str


class Graph:
    def __init__(self, workflow: dict[str, Any]) -> None:
        self.workflow = workflow
        self.nodes: dict[str, dict[str, Any]] = {n["name"]: n for n in workflow["nodes"]}
        self.edges: list[Edge] = [
            Edge(source, index, link["node"])
            for source, kinds in workflow.get("connections", {}).items()
            for index, links in enumerate(kinds.get("main", []))
            for link in links or []
        ]

    def out(self, name: str, output: int | None = None) -> list[Edge]:
        return [
            e for e in self.edges if e.source == name and (output is None or e.output == output)
        ]

    def regular_outputs(self, name: str) -> int:
        node = self.nodes[name]
        if node["type"] == IF:
            return 2
        if node["type"] == SWITCH:
            params = node.get("parameters", {})
            rules = len(params.get("rules", {}).get("values", []))
            return rules + (1 if params.get("options", {}).get("fallbackOutput") == "extra" else 0)
        return 1

    def error_output(self, name: str) -> int | None:
        """The index of a node's error output (n8n puts it after the regular ones), if any."""
        if self.nodes[name].get("onError") != "continueErrorOutput":
            return None
        return self.regular_outputs(name)

    def outputs(self, name: str) -> list[int]:
        """The outputs a run can leave `name` by: the regular ones, and the error output when it
        is connected (an unconnected one is reported by itself)."""
        indexes = list(range(self.regular_outputs(name)))
        error = self.error_output(name)
        if error is not None and self.out(name, error):
            indexes.append(error)
        return indexes

    def paths(self, start: Edge, *, stop: set[str]) -> Iterator[tuple[list[Edge], int | None]]:
        """Every path that begins with `start`: to a node in `stop`, back to a node already on
        it, or out of an output that leads nowhere (returned with the path; else None)."""
        stack: list[list[Edge]] = [[start]]
        while stack:
            path = stack.pop()
            last = path[-1].target
            if last in stop or last in {path[0].source, *(e.target for e in path[:-1])}:
                yield path, None
                continue
            for output in self.outputs(last):
                following = self.out(last, output)
                if not following:
                    yield path, output
                stack.extend([*path, edge] for edge in following)


def after_response(graph: Graph) -> set[str]:
    """Nodes a run reaches only after a Respond to Webhook answered the hub (n8n sends the first
    answer only: any later one is never seen)."""
    seen: set[str] = set()
    stack = [
        e.target for name, n in graph.nodes.items() if n["type"] == RESPOND for e in graph.out(name)
    ]
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(e.target for e in graph.out(name))
    return seen


def answers_failure(graph: Graph, name: str) -> bool:
    """`name` answers the hub's delivery with an error: its outbox retries or dead-letters it."""
    node = graph.nodes[name]
    return (
        node["type"] == RESPOND and response_code(node) >= 400 and name not in after_response(graph)
    )


def url_of(node: dict[str, Any]) -> str:
    return str(node.get("parameters", {}).get("url", ""))


def is_callback(node: dict[str, Any]) -> bool:
    url = url_of(node)
    return node["type"] == HTTP and "callback_url" in url and "claim" not in url


def is_claim(node: dict[str, Any]) -> bool:
    return node["type"] == HTTP and "claim" in url_of(node)


def response_code(node: dict[str, Any]) -> int:
    return int(node.get("parameters", {}).get("options", {}).get("responseCode", 200))


def switch_rules(node: dict[str, Any]) -> list[dict[str, Any]]:
    return list(node.get("parameters", {}).get("rules", {}).get("values", []))


def rule_values(rule: dict[str, Any]) -> list[str]:
    conditions = rule.get("conditions", {}).get("conditions", [])
    return [str(c.get("rightValue")) for c in conditions]


def action_switch(graph: Graph) -> str:
    """The Switch whose rules name the envelope's actions."""
    for name, node in graph.nodes.items():
        values = {v for rule in switch_rules(node) for v in rule_values(rule)}
        if node["type"] == SWITCH and values & set(N8N_ACTIONS):
            return name
    raise AssertionError("no Switch routes on the envelope's action")


def action_outputs(graph: Graph, switch: str) -> dict[str, int]:
    return {
        value: index
        for index, rule in enumerate(switch_rules(graph.nodes[switch]))
        for value in rule_values(rule)
    }


def fallback_output(graph: Graph, switch: str) -> int | None:
    options = graph.nodes[switch].get("parameters", {}).get("options", {})
    if options.get("fallbackOutput") != "extra":
        return None
    return len(switch_rules(graph.nodes[switch]))


def refuses_duplicate(graph: Graph, edge: Edge) -> bool:
    """`edge` leaves a Switch/If through an output whose condition is the claim's proceed=false."""
    node = graph.nodes[edge.source]
    rules = switch_rules(node)
    if node["type"] != SWITCH or edge.output >= len(rules):
        return False
    text = json.dumps(rules[edge.output].get("conditions", {}))
    return bool(re.search(r"proceed\s*===?\s*false", text))


def path_problem(graph: Graph, path: list[Edge], dangling: int | None) -> str:
    """Why a path out of the action Switch is wrong ("" when it is fine)."""
    names = [path[0].source, *(e.target for e in path)]
    last = graph.nodes[names[-1]]
    if is_callback(last):
        return ""
    shown = " → ".join(names)
    if names[-1] in names[:-1]:
        return f"{shown}: loops without a callback to the hub"
    if last["type"] == RESPOND and dangling == 0:
        if answers_failure(graph, last["name"]):
            return ""
        claimed = any(is_claim(graph.nodes[n]) for n in names)
        if claimed and any(refuses_duplicate(graph, e) for e in path):
            return ""  # a duplicate: the execution that holds the claim reports
    if dangling is not None and graph.regular_outputs(last["name"]) > 1:
        shown += f" (output {dangling})"
    return f"{shown}: ends without a callback to the hub"


def branch_problems(graph: Graph) -> list[str]:
    """Every action's branch and every error output must reach a callback (see module doc)."""
    problems = []
    switch = action_switch(graph)
    outputs = action_outputs(graph, switch)
    callbacks = {name for name, node in graph.nodes.items() if is_callback(node)}
    if not callbacks:
        problems.append("no HTTP Request node posts to the envelope's callback_url")
    for action in N8N_ACTIONS:
        if action not in outputs:
            problems.append(f"{switch}: no rule for the action {action!r}")
            continue
        edges = graph.out(switch, outputs[action])
        if not edges:
            problems.append(f"{switch}: the {action!r} output leads nowhere")
        for edge in edges:
            for path, dangling in graph.paths(edge, stop=callbacks):
                problem = path_problem(graph, path, dangling)
                if problem:
                    problems.append(f"{action}: {problem}")
    for name in graph.nodes:
        index = graph.error_output(name)
        if index is None:
            continue
        edges = graph.out(name, index)
        if not edges:
            problems.append(f"{name}: its error output leads nowhere")
        for edge in edges:
            for path, _dangling in graph.paths(edge, stop=callbacks):
                shown = f"{name} (error) → {' → '.join(e.target for e in path)}"
                if answers_failure(graph, path[-1].target):
                    continue  # e.g. the hub cannot be reached to claim: a 503 for its delivery
                if path[-1].target not in callbacks:
                    problems.append(f"{shown}: no callback")
                elif not any(reports_failed(graph.nodes[e.target]) for e in path):
                    problems.append(f"{shown}: not a failed callback")
    return sorted(set(problems))


def reports_failed(node: dict[str, Any]) -> bool:
    return bool(re.search(r"status\W+failed\b", json.dumps(node.get("parameters", {}))))


def fallback_problems(graph: Graph) -> list[str]:
    switch = action_switch(graph)
    index = fallback_output(graph, switch)
    if index is None:
        return [f"{switch}: no fallback output for an unknown action"]
    edges = graph.out(switch, index)
    if not edges:
        return [f"{switch}: the fallback output leads nowhere"]
    problems = []
    for edge in edges:
        for path, _dangling in graph.paths(edge, stop=set()):
            last = graph.nodes[path[-1].target]
            if last["type"] != RESPOND or response_code(last) != 422:
                problems.append(f"{switch} fallback → {last['name']}: does not answer 422")
    return problems


def structure_problems(workflow: dict[str, Any]) -> list[str]:
    names = [n["name"] for n in workflow["nodes"]]
    problems = [f"two nodes named {n!r}" for n in sorted(set(names)) if names.count(n) > 1]
    for source, kinds in workflow.get("connections", {}).items():
        if source not in names:
            problems.append(f"connections from {source!r}: no such node")
        for links in kinds.get("main", []):
            problems += [
                f"{source} → {link['node']}: no such node"
                for link in links or []
                if link["node"] not in names
            ]
    return problems


# --- the real workflow ------------------------------------------------------------------------


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    data: dict[str, Any] = load(WORKFLOW)
    return data


@pytest.fixture(scope="module")
def graph(workflow: dict[str, Any]) -> Graph:
    return Graph(workflow)


def test_the_workflow_and_the_credentials_are_json(workflow: dict[str, Any]) -> None:
    assert isinstance(workflow["nodes"], list)
    assert workflow["nodes"]
    assert isinstance(workflow["connections"], dict)
    assert isinstance(load(CREDENTIALS), list)


def test_node_names_are_unique_and_every_connection_names_a_node(
    workflow: dict[str, Any],
) -> None:
    assert structure_problems(workflow) == []


def test_every_node_type_and_version_exists_in_n8n_1_123_81(workflow: dict[str, Any]) -> None:
    known = load(CATALOG)["node_types"]
    unknown = [
        f"{n['name']}: {n['type']} v{n.get('typeVersion')}"
        for n in workflow["nodes"]
        if n.get("typeVersion") not in known.get(n["type"], [])
    ]
    assert unknown == []


def test_the_webhook_checks_the_hubs_secret_header(graph: Graph) -> None:
    [webhook] = [n for n in graph.nodes.values() if n["type"] == WEBHOOK]
    assert webhook["parameters"]["authentication"] == "headerAuth"
    assert webhook["parameters"]["httpMethod"] == "POST"
    ref = webhook["credentials"]["httpHeaderAuth"]
    [credential] = [c for c in load(CREDENTIALS) if c["id"] == ref["id"]]
    assert credential["type"] == "httpHeaderAuth"
    assert credential["data"]["name"] == SECRET_HEADER


def test_every_action_of_the_envelope_has_a_branch_out_of_the_switch(graph: Graph) -> None:
    switch = action_switch(graph)
    outputs = action_outputs(graph, switch)
    assert sorted(outputs) == sorted(N8N_ACTIONS)
    assert all(graph.out(switch, outputs[action]) for action in N8N_ACTIONS)


def test_an_unknown_action_falls_back_to_a_422_answer(graph: Graph) -> None:
    assert fallback_problems(graph) == []


def test_every_branch_and_every_error_output_reaches_a_callback_to_the_hub(graph: Graph) -> None:
    assert branch_problems(graph) == []


def test_the_claim_comes_before_anything_reaches_the_customer(graph: Graph) -> None:
    """The duplicate guard: no HTTP call other than the claim (and the callback) on a path from
    the Switch before the claim's proceed branch."""
    switch = action_switch(graph)
    claims = {name for name, node in graph.nodes.items() if is_claim(node)}
    assert claims, "no node claims the action at <callback_url>claim/"
    for edge in graph.out(switch):
        if edge.output == fallback_output(graph, switch):
            continue
        for path, _dangling in graph.paths(edge, stop=claims):
            before = [e.target for e in path[:-1]]
            assert not [n for n in before if graph.nodes[n]["type"] == HTTP], path


def test_credentials_are_only_those_of_the_example_file(graph: Graph) -> None:
    example = {(c["type"], c["id"], c["name"]) for c in load(CREDENTIALS)}
    used = {
        (kind, ref.get("id"), ref.get("name"))
        for node in graph.nodes.values()
        for kind, ref in (node.get("credentials") or {}).items()
    }
    assert used - example == set()
    catalog_types = set(load(CATALOG)["credential_types"])
    assert {kind for kind, _id, _name in example} <= catalog_types


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def secret_like(value: Any) -> list[str]:
    found = []
    for text in strings(value):
        for label, pattern in SECRET_PATTERNS.items():
            for match in pattern.finditer(text):
                found.append(f"{label}: {match.group(0)[:12]}…")
    return found


def without_code(workflow: dict[str, Any]) -> dict[str, Any]:
    """Code nodes' JavaScript is not a value (identifiers can be long); everything else is."""
    nodes = [
        {**n, "parameters": {k: v for k, v in n["parameters"].items() if k != "jsCode"}}
        for n in workflow["nodes"]
    ]
    return {**workflow, "nodes": nodes}


def test_nothing_in_the_workflow_or_the_credentials_example_looks_like_a_secret(
    workflow: dict[str, Any],
) -> None:
    assert secret_like(without_code(workflow)) == []
    assert secret_like([n["parameters"].get("jsCode", "") for n in workflow["nodes"]]) == []
    for credential in load(CREDENTIALS):
        values = [v for k, v in credential["data"].items() if k != "name"]  # "name": the header
        for value in values:
            # Placeholders only: "<…>", optionally after the scheme ("Bearer <…>").
            assert re.fullmatch(r"(?:[A-Za-z-]+ )?<[^<>]+>", value), (credential["name"], value)


@pytest.mark.skipif(
    not (ENGINE / "node_modules" / "n8n" / "package.json").exists(), reason="no n8n engine here"
)
def test_the_catalog_is_what_the_installed_engine_says() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("n8n_catalog", ROOT / "n8n" / "catalog.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    built = module.catalog_build(ENGINE)
    if built["n8n"] != N8N_VERSION:
        pytest.skip(f"the engine here is n8n {built['n8n']}")
    assert module.catalog_dump(built) == CATALOG.read_text()


# --- the walker on sample graphs ----------------------------------------------------------------


def node(name: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "type": kind, "typeVersion": 1, "parameters": {}, **fields}


def switch_node(actions: list[str], *, fallback: bool = True) -> dict[str, Any]:
    rules = [
        {"conditions": {"conditions": [{"leftValue": "={{ $json.body.action }}", "rightValue": a}]}}
        for a in actions
    ]
    options = {"fallbackOutput": "extra"} if fallback else {}
    return node("Action", SWITCH, parameters={"rules": {"values": rules}, "options": options})


CALLBACK = node("Callback", HTTP, parameters={"url": "={{ $json.callback_url }}"})
FAILURE = node("Failure", "n8n-nodes-base.code", parameters={"jsCode": "status: 'failed'"})
REJECT = node("Reject", RESPOND, parameters={"options": {"responseCode": 422}})
SEND = node("Send", HTTP, onError="continueErrorOutput", parameters={"url": "https://wa"})


def sample(
    *, actions: list[str] | None = None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A Switch whose every action goes Send → Callback, errors → Failure → Callback."""
    actions = list(N8N_ACTIONS) if actions is None else actions
    connections: dict[str, Any] = {
        "Action": {"main": [[{"node": "Send"}] for _ in actions] + [[{"node": "Reject"}]]},
        "Send": {"main": [[{"node": "Callback"}], [{"node": "Failure"}]]},
        "Failure": {"main": [[{"node": "Callback"}]]},
    }
    connections.update(extra or {})
    return {
        "nodes": [switch_node(actions), SEND, FAILURE, CALLBACK, REJECT],
        "connections": connections,
    }


def test_the_walker_accepts_a_sound_sample_graph() -> None:
    graph = Graph(sample())
    assert (branch_problems(graph), fallback_problems(graph)) == ([], [])


def test_the_walker_finds_a_branch_that_stops_before_the_callback() -> None:
    graph = Graph(sample(extra={"Send": {"main": [[], [{"node": "Failure"}]]}}))
    assert branch_problems(graph) == sorted(
        f"{a}: Action → Send: ends without a callback to the hub" for a in N8N_ACTIONS
    )
    workflow = sample(extra={"Send": {"main": [[{"node": "Quiet"}], [{"node": "Failure"}]]}})
    workflow["nodes"].append(node("Quiet", "n8n-nodes-base.noOp"))
    assert branch_problems(Graph(workflow)) == sorted(
        f"{a}: Action → Send → Quiet: ends without a callback to the hub" for a in N8N_ACTIONS
    )


def test_the_walker_finds_an_if_whose_false_branch_leads_nowhere() -> None:
    workflow = sample(extra={"Send": {"main": [[{"node": "Sent?"}], [{"node": "Failure"}]]}})
    workflow["nodes"].append(node("Sent?", IF))
    workflow["connections"]["Sent?"] = {"main": [[{"node": "Callback"}]]}
    assert branch_problems(Graph(workflow)) == sorted(
        f"{a}: Action → Send → Sent? (output 1): ends without a callback to the hub"
        for a in N8N_ACTIONS
    )


def test_the_walker_finds_an_action_without_a_branch_and_an_error_output_without_failed() -> None:
    workflow = sample(
        actions=[a for a in N8N_ACTIONS if a != "reminder"],
        extra={"Send": {"main": [[{"node": "Callback"}], [{"node": "Callback"}]]}},
    )
    assert branch_problems(Graph(workflow)) == [
        "Action: no rule for the action 'reminder'",
        "Send (error) → Callback: not a failed callback",
    ]


def test_the_walker_finds_an_error_output_that_leads_nowhere() -> None:
    workflow = sample(extra={"Send": {"main": [[{"node": "Callback"}]]}})
    assert branch_problems(Graph(workflow)) == ["Send: its error output leads nowhere"]


def test_a_2xx_answer_ends_a_branch_only_as_the_claims_duplicate() -> None:
    duplicate = node("Respond duplicate", RESPOND, parameters={"options": {"responseCode": 200}})
    workflow = sample(extra={"Send": {"main": [[{"node": "Respond duplicate"}], []]}})
    workflow["nodes"] = [n for n in workflow["nodes"] if n["name"] != "Send"]
    workflow["nodes"] += [node("Send", HTTP, parameters={"url": "https://wa"}), duplicate]
    assert all("ends without a callback" in p for p in branch_problems(Graph(workflow)))

    claim = node("Claim", HTTP, parameters={"url": "={{ $json.claim_url }}"})
    answer = node(
        "Claim answer",
        SWITCH,
        parameters={
            "rules": {
                "values": [
                    {
                        "conditions": {
                            "conditions": [{"leftValue": "={{ $json.body?.proceed === true }}"}]
                        }
                    },
                    {
                        "conditions": {
                            "conditions": [{"leftValue": "={{ $json.body?.proceed === false }}"}]
                        }
                    },
                ]
            }
        },
    )
    workflow = sample(
        extra={
            "Action": {"main": [[{"node": "Claim"}] for _ in N8N_ACTIONS] + [[{"node": "Reject"}]]},
            "Claim": {"main": [[{"node": "Claim answer"}]]},
            "Claim answer": {"main": [[{"node": "Send"}], [{"node": "Respond duplicate"}]]},
        }
    )
    workflow["nodes"] += [claim, answer, duplicate]
    assert branch_problems(Graph(workflow)) == []


def test_the_fallback_must_answer_422() -> None:
    workflow = sample()
    workflow["nodes"][-1] = node("Reject", RESPOND, parameters={"options": {"responseCode": 200}})
    assert fallback_problems(Graph(workflow)) == ["Action fallback → Reject: does not answer 422"]
    workflow["nodes"][0] = switch_node(list(N8N_ACTIONS), fallback=False)
    assert fallback_problems(Graph(workflow)) == [
        "Action: no fallback output for an unknown action"
    ]


def test_the_walker_survives_a_loop() -> None:
    workflow = sample(extra={"Failure": {"main": [[{"node": "Send"}]]}})
    assert branch_problems(Graph(workflow)) == sorted(
        [
            *(
                f"{a}: Action → Send → Failure → Send: loops without a callback to the hub"
                for a in N8N_ACTIONS
            ),
            "Send (error) → Failure → Send: no callback",
        ]
    )


def test_the_secret_scan_finds_tokens_and_ignores_placeholders_and_expressions() -> None:
    assert secret_like({"value": "Bearer <WhatsApp Business Cloud API access token>"}) == []
    assert (
        secret_like({"url": "={{ $('Read envelope').first(0).json.settings.kommo_base_url }}"})
        == []
    )
    assert secret_like(
        {"h": "Bearer EAAGm0PX4ZCpsBAKZAZBQmZCZAa1b2c3d4e5f6g7h8i9j0kLmNoPqRsT"}
    ) == [
        "Meta access token: EAAGm0PX4ZCp…",
        "bearer token: Bearer EAAGm…",
        "long token: EAAGm0PX4ZCp…",
    ]
    assert secret_like(["sk-proj-abcdefghijklmnopqrstuvwxyz012345"]) == [
        "OpenAI key: sk-proj-abcd…"
    ]


def test_an_error_answer_after_the_hub_was_already_answered_excuses_nothing() -> None:
    accepted = node("Accepted", RESPOND, parameters={"options": {"responseCode": 202}})
    late = node("Late", RESPOND, parameters={"options": {"responseCode": 503}})
    workflow = sample(
        extra={
            "Action": {
                "main": [[{"node": "Accepted"}] for _ in N8N_ACTIONS] + [[{"node": "Reject"}]]
            },
            "Accepted": {"main": [[{"node": "Send"}]]},
            "Send": {"main": [[{"node": "Callback"}], [{"node": "Late"}]]},
        }
    )
    workflow["nodes"] += [accepted, late]
    assert branch_problems(Graph(workflow)) == sorted(
        [
            *(
                f"{a}: Action → Accepted → Send → Late: ends without a callback to the hub"
                for a in N8N_ACTIONS
            ),
            "Send (error) → Late: no callback",
        ]
    )
