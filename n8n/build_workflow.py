"""Write n8n/kommo_hub.workflow.json: the nodes, their JavaScript and their connections.

    .venv/bin/python n8n/build_workflow.py          # rewrite the workflow
    .venv/bin/python n8n/build_workflow.py --check  # exit 1 when the committed JSON differs

The JSON is what users import into n8n; this file is where it is edited (the Code nodes'
JavaScript reads better here than escaped in JSON). tests/n8n/test_engine.py runs the result in
the real n8n 1.123.81; tests/n8n/test_workflow_build.py checks the two are in step.
"""
# The Code nodes' JavaScript below keeps its own line width.
# ruff: noqa: E501

import json
import sys
import uuid
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "kommo_hub.workflow.json"
NS = uuid.UUID("6f1c1b52-3f0e-4a55-9d0e-6b1f3c7a2e10")  # stable node ids across rebuilds

CRED = {
    "hub_secret": {"id": "khHubSecret0001", "name": "Kommo Hub secret (X-Kommo-Hub-Secret)"},
    "hub_api": {"id": "khHubApiKey0001", "name": "Kommo Hub API key"},
    "whatsapp": {"id": "khWhatsApp00001", "name": "WhatsApp Cloud API token"},
    "kommo": {"id": "khKommoToken001", "name": "Kommo access token"},
    "openai": {"id": "khOpenAiKey0001", "name": "OpenAI API key"},
    "anthropic": {"id": "khAnthropic0001", "name": "Anthropic API key"},
}

nodes: list[dict[str, Any]] = []
connections: dict[str, dict[str, list[list[dict[str, Any]]]]] = {}
Position = tuple[int, int]


def nid(name: str) -> str:
    return str(uuid.uuid5(NS, name))


def node(
    name: str, type_: str, version: float, params: dict[str, Any], pos: Position, **extra: Any
) -> str:
    entry = {
        "parameters": params,
        "id": nid(name),
        "name": name,
        "type": type_,
        "typeVersion": version,
        "position": list(pos),
    }
    entry.update(extra)
    nodes.append(entry)
    return name


def connect(src: str, dst: str, out: int = 0) -> None:
    outputs = connections.setdefault(src, {"main": []})["main"]
    while len(outputs) <= out:
        outputs.append([])
    outputs[out].append({"node": dst, "type": "main", "index": 0})


def code(name: str, js: str, pos: Position, on_error: str | None = None) -> str:
    extra = {"onError": on_error} if on_error else {}
    return node(
        name,
        "n8n-nodes-base.code",
        2,
        {"mode": "runOnceForAllItems", "language": "javaScript", "jsCode": js.strip() + "\n"},
        pos,
        **extra,
    )


def respond(name: str, code_: int, body_expr: str, pos: Position) -> str:
    return node(
        name,
        "n8n-nodes-base.respondToWebhook",
        1.1,
        {
            "respondWith": "json",
            "responseBody": "={{ JSON.stringify(" + body_expr + ") }}",
            "options": {"responseCode": code_},
        },
        pos,
    )


def if_true(name: str, left: str, pos: Position) -> str:
    return node(
        name,
        "n8n-nodes-base.if",
        2.2,
        {
            "conditions": {
                "options": {
                    "caseSensitive": True,
                    "leftValue": "",
                    "typeValidation": "loose",
                    "version": 2,
                },
                "conditions": [
                    {
                        "id": nid(name + ":cond"),
                        "leftValue": "={{ " + left + " }}",
                        "rightValue": "",
                        "operator": {"type": "boolean", "operation": "true", "singleValue": True},
                    }
                ],
                "combinator": "and",
            },
            "looseTypeValidation": True,
            "options": {},
        },
        pos,
    )


def http(
    name: str,
    url: str,
    body_expr: str,
    pos: Position,
    *,
    cred: str | None = None,
    headers: dict[str, str] | None = None,
    full: bool = False,
    timeout: int = 30000,
    **extra: Any,
) -> str:
    params: dict[str, Any] = {
        "method": "POST",
        "url": url,
        "authentication": "genericCredentialType" if cred else "none",
    }
    if cred:
        params["genericAuthType"] = "httpHeaderAuth"
    if headers:
        params["sendHeaders"] = True
        params["headerParameters"] = {
            "parameters": [{"name": k, "value": v} for k, v in headers.items()]
        }
    params.update(
        {
            "sendBody": True,
            "specifyBody": "json",
            "jsonBody": "={{ JSON.stringify(" + body_expr + ") }}",
            "options": {"timeout": timeout},
        }
    )
    if full:
        params["options"]["response"] = {"response": {"fullResponse": True, "neverError": True}}
    if cred:
        extra["credentials"] = {"httpHeaderAuth": CRED[cred]}
    return node(name, "n8n-nodes-base.httpRequest", 4.2, params, pos, **extra)


def bool_switch(name: str, cases: list[tuple[str, str]], fallback: str, pos: Position) -> str:
    values: list[dict[str, Any]] = []
    for key, expr in cases:
        values.append(
            {
                "conditions": {
                    "options": {
                        "caseSensitive": True,
                        "leftValue": "",
                        "typeValidation": "loose",
                        "version": 2,
                    },
                    "conditions": [
                        {
                            "id": nid(name + ":" + key),
                            "leftValue": "={{ " + expr + " }}",
                            "rightValue": "",
                            "operator": {
                                "type": "boolean",
                                "operation": "true",
                                "singleValue": True,
                            },
                        }
                    ],
                    "combinator": "and",
                },
                "renameOutput": True,
                "outputKey": key,
            }
        )
    return node(
        name,
        "n8n-nodes-base.switch",
        3.2,
        {
            "rules": {"values": values},
            "looseTypeValidation": True,
            "options": {"fallbackOutput": "extra", "renameFallbackOutput": fallback},
        },
        pos,
    )


ACTIONS = ["proactive_message", "reply", "schedule", "reminder", "handoff"]

# --- entry: webhook, switch, envelope check, claim ------------------------------------------------

node(
    "Kommo Hub webhook",
    "n8n-nodes-base.webhook",
    2,
    {
        "httpMethod": "POST",
        "path": "kommo-hub",
        "authentication": "headerAuth",
        "responseMode": "responseNode",
        "options": {},
    },
    (0, 300),
    webhookId="0b4d7c1e-8a6f-4f53-9a77-2c6f0e1a9d31",
    credentials={"httpHeaderAuth": CRED["hub_secret"]},
)

rules: list[dict[str, Any]] = []
for action in ACTIONS:
    rules.append(
        {
            "conditions": {
                "options": {
                    "caseSensitive": True,
                    "leftValue": "",
                    "typeValidation": "loose",
                    "version": 2,
                },
                "conditions": [
                    {
                        "id": nid("switch:" + action),
                        "leftValue": "={{ String($json.body.action ?? '') }}",
                        "rightValue": action,
                        "operator": {"type": "string", "operation": "equals"},
                    }
                ],
                "combinator": "and",
            },
            "renameOutput": True,
            "outputKey": action,
        }
    )
node(
    "Action",
    "n8n-nodes-base.switch",
    3.2,
    {
        "rules": {"values": rules},
        "looseTypeValidation": True,
        "options": {"fallbackOutput": "extra", "renameFallbackOutput": "unknown action"},
    },
    (220, 300),
)
connect("Kommo Hub webhook", "Action")
respond(
    "Respond unknown action",
    422,
    "{ error: 'unknown action: ' + JSON.stringify($('Kommo Hub webhook').first(0).json.body?.action"
    " ?? null) + ' (expected one of proactive_message, reply, schedule, reminder, handoff)' }",
    (460, 700),
)
connect("Action", "Respond unknown action", out=len(ACTIONS))

READ_ENVELOPE = r"""
// The envelope (ARCHITECTURE §4.2) and the settings, read once; every later node uses this.
const body = $('Kommo Hub webhook').first(0).json.body || {};
const env = (name, fallback = '') => {
  const value = $env[name];
  return value === undefined || value === null || String(value).trim() === '' ? fallback : String(value).trim();
};
const problems = [];
const key = typeof body.idempotency_key === 'string' ? body.idempotency_key.trim() : '';
if (!key) problems.push('idempotency_key is missing');
const callbackUrl = typeof body.callback_url === 'string' ? body.callback_url.trim() : '';
const origin = (callbackUrl.match(/^https?:\/\/[^\/?#]+/) || [''])[0];
if (!origin) problems.push('callback_url is missing or not an http(s) URL');
const action = String(body.action);
const lead = body.lead && typeof body.lead === 'object' ? body.lead : {};
const salesperson = body.salesperson && typeof body.salesperson === 'object' ? body.salesperson : null;
const conversation = body.conversation && typeof body.conversation === 'object' ? body.conversation : null;
if (action === 'schedule' && !(body.scheduling && Array.isArray(body.scheduling.slots))) {
  problems.push('schedule needs a scheduling block with slots');
}
if (action === 'reminder' && !(body.appointment && body.appointment.start)) {
  problems.push('reminder needs an appointment block with start');
}
const digits = (phone) => String(phone || '').replace(/\D/g, '');
const toSalesperson = action === 'handoff';
const recipient = digits(toSalesperson ? salesperson && salesperson.phone : lead.phone);
const hubUrl = env('KOMMO_HUB_URL', origin).replace(/\/+$/, '');
return [{ json: {
  ok: problems.length === 0,
  problem: problems.join('; '),
  action,
  idempotency_key: key,
  callback_url: callbackUrl,
  claim_url: callbackUrl.replace(/\/?$/, '/') + 'claim/',
  hub_url: hubUrl,
  booking_url: hubUrl + '/api/scheduling/appointments/',
  lead,
  area: body.area || {},
  salesperson,
  conversation,
  message: body.message || null,
  scheduling: body.scheduling || null,
  appointment: body.appointment || null,
  handoff: body.handoff || null,
  recipient,
  to_salesperson: toSalesperson,
  // Free text only inside the customer's 24-hour window; a salesperson's window is unknown.
  window_open: !toSalesperson && conversation !== null && conversation.window_open === true,
  needs_ai: ['proactive_message', 'reply', 'schedule'].includes(action),
  wants_note: !toSalesperson && env('KOMMO_BASE_URL', '') !== '' && lead.kommo_lead_id !== undefined && lead.kommo_lead_id !== null && lead.kommo_lead_id !== '',
  timezone: (body.scheduling && body.scheduling.timezone) || env('TIMEZONE', 'America/Sao_Paulo'),
  settings: {
    ai_provider: env('AI_PROVIDER', 'openai').toLowerCase(),
    ai_model: env('AI_MODEL', ''),
    ai_base_url: env('AI_BASE_URL', '').replace(/\/+$/, ''),
    whatsapp_api_url: env('WHATSAPP_API_URL', 'https://graph.facebook.com/v21.0').replace(/\/+$/, ''),
    whatsapp_phone_number_id: env('WHATSAPP_PHONE_NUMBER_ID', ''),
    template_name: env('WHATSAPP_TEMPLATE_NAME', ''),
    template_language: env('WHATSAPP_TEMPLATE_LANGUAGE', 'pt_BR'),
    template_parameter: env('WHATSAPP_TEMPLATE_PARAMETER', 'text').toLowerCase(),
    kommo_base_url: env('KOMMO_BASE_URL', '').replace(/\/+$/, ''),
  },
} }];
"""
code("Read envelope", READ_ENVELOPE, (460, 300))
for index in range(len(ACTIONS)):
    connect("Action", "Read envelope", out=index)
if_true("Envelope ok?", "$json.ok", (680, 300))
connect("Read envelope", "Envelope ok?")
respond("Respond bad envelope", 422, "{ error: $json.problem }", (900, 500))
connect("Envelope ok?", "Respond bad envelope", out=1)

http(
    "Claim",
    "={{ $json.claim_url }}",
    "{ idempotency_key: $json.idempotency_key, action: $json.action, execution_id: String($execution.id) }",
    (900, 280),
    full=True,
    timeout=15000,
    onError="continueErrorOutput",
)
connect("Envelope ok?", "Claim", out=0)
bool_switch(
    "Claim answer",
    [
        ("proceed", "$json.statusCode === 200 && $json.body?.proceed === true"),
        ("duplicate", "$json.statusCode === 200 && $json.body?.proceed === false"),
        (
            "refused",
            "$json.statusCode >= 400 && $json.statusCode < 500 && ![408, 425, 429].includes($json.statusCode)",
        ),
    ],
    "retry later",
    (1120, 280),
)
connect("Claim", "Claim answer")
respond(
    "Respond claim failed",
    503,
    "{ status: 'retry', error: 'could not claim the action: ' + ($json.statusCode ? 'HTTP ' + $json.statusCode"
    " : String($json.error?.message ?? $json.error ?? 'no answer')) }",
    (1340, 620),
)
connect("Claim", "Respond claim failed", out=1)
connect("Claim answer", "Respond claim failed", out=3)
respond(
    "Respond claim refused",
    422,
    "{ status: 'refused', error: 'the hub refused the claim: HTTP ' + $json.statusCode + ' '"
    " + String($json.body?.detail ?? '') }",
    (1340, 460),
)
connect("Claim answer", "Respond claim refused", out=2)
respond(
    "Respond duplicate",
    200,
    "{ status: 'duplicate', reason: String($json.body?.reason ?? '') }",
    (1340, 300),
)
connect("Claim answer", "Respond duplicate", out=1)
respond("Respond accepted", 202, "{ status: 'accepted' }", (1340, 120))
connect("Claim answer", "Respond accepted", out=0)

# --- what to say: the AI (proactive_message, reply, schedule) or a fixed text ------------------------

if_true("Needs AI?", "$('Read envelope').first(0).json.needs_ai", (1560, 260))
connect("Respond accepted", "Needs AI?")

PROMPT = r"""
// The chat request for the configured provider: a system prompt from the area's instructions
// and a user prompt with the lead, the conversation and (schedule) the offered slots.
const ctx = $('Read envelope').first(0).json;
const s = ctx.settings;
const area = ctx.area || {};
const lead = ctx.lead || {};
const when = (iso) => {
  const parts = Object.fromEntries(new Intl.DateTimeFormat('pt-BR', {
    timeZone: ctx.timezone, weekday: 'long', day: '2-digit', month: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
  }).formatToParts(new Date(iso)).map((part) => [part.type, part.value]));
  return parts.weekday + ', ' + parts.day + '/' + parts.month + ' às ' + parts.hour + 'h' + parts.minute;
};
const rules = [
  'Você é o assistente de atendimento por WhatsApp da empresa. Escreva sempre em português do Brasil,',
  'em tom cordial e natural, com no máximo 3 frases curtas. Nunca invente preços, prazos, horários ou dados.',
  area.ai_instructions ? 'Instruções da área ' + (area.name || '') + ': ' + area.ai_instructions : '',
  'Se o cliente pedir para falar com uma pessoa, reclamar, ou se você não souber responder com segurança,',
  'marque handoff=true e escreva uma mensagem curta dizendo que um consultor vai continuar o atendimento.',
];
const lines = [];
lines.push('Cliente: ' + (lead.name || 'sem nome') + (lead.source ? ' (origem: ' + lead.source + ')' : ''));
if (ctx.salesperson && ctx.salesperson.name) lines.push('Consultor responsável: ' + ctx.salesperson.name);
if (lead.fields && Object.keys(lead.fields).length) lines.push('Dados do cadastro: ' + JSON.stringify(lead.fields));
const history = (ctx.conversation && ctx.conversation.last_messages) || [];
if (history.length) {
  lines.push('Conversa até agora (mais antiga primeiro):');
  for (const m of history) {
    const who = m.direction === 'in' || m.author === 'customer' ? 'Cliente' : (m.author === 'bot' ? 'Assistente' : 'Consultor');
    lines.push('- ' + who + ': ' + String(m.text || '').slice(0, 1000));
  }
}
if (ctx.message && ctx.message.text) lines.push('Última mensagem do cliente: ' + String(ctx.message.text).slice(0, 2000));
let shape = '{"text": "mensagem para o cliente", "handoff": false, "handoff_reason": ""}';
if (ctx.action === 'proactive_message') {
  rules.push('Esta é a primeira mensagem para um lead que acabou de chegar: apresente-se e convide para conversar.');
  if (area.first_message_hint) rules.push('Sugestão para a primeira mensagem: ' + area.first_message_hint);
} else if (ctx.action === 'schedule') {
  const slots = (ctx.scheduling && ctx.scheduling.slots) || [];
  rules.push('O cliente quer marcar, remarcar ou cancelar uma reunião (' + (ctx.scheduling.duration_minutes || '') + ' minutos).');
  rules.push('Use SOMENTE os horários da lista abaixo; nunca proponha nem aceite outro horário.');
  rules.push('Se o cliente já escolheu claramente um horário da lista, coloque o "start" exato dele em accepted_slot;');
  rules.push('senão, proponha horários da lista (os "start" exatos em proposed_slots) e deixe accepted_slot null.');
  lines.push('Horários livres (fuso ' + ctx.timezone + '):');
  slots.forEach((slot) => lines.push('- start=' + slot.start + ' (' + when(slot.start) + ')'));
  if (!slots.length) lines.push('- nenhum horário livre no momento');
  if (['cancel', 'reschedule'].includes(ctx.scheduling.intent)) rules.push('O cliente quer cancelar ou remarcar: não confirme nada; diga que o consultor vai cuidar disso.');
  shape = '{"text": "mensagem", "accepted_slot": null, "proposed_slots": [], "handoff": false, "handoff_reason": ""}';
}
rules.push('Responda SOMENTE com um objeto JSON neste formato: ' + shape);
const system = rules.filter(Boolean).join('\n');
const user = lines.join('\n');
const anthropic = s.ai_provider === 'anthropic';
const model = s.ai_model || (anthropic ? 'claude-3-5-haiku-latest' : 'gpt-4o-mini');
const request = anthropic
  ? { model, max_tokens: 800, system, messages: [{ role: 'user', content: user }] }
  : { model, temperature: 0.3, messages: [{ role: 'system', content: system }, { role: 'user', content: user }] };
const url = anthropic
  ? (s.ai_base_url || 'https://api.anthropic.com') + '/v1/messages'
  : (s.ai_base_url || 'https://api.openai.com/v1') + '/chat/completions';
return [{ json: { provider: anthropic ? 'anthropic' : 'openai', url, request } }];
"""
code("Prompt", PROMPT, (1780, 160), on_error="continueErrorOutput")
connect("Needs AI?", "Prompt", out=0)
if_true("Anthropic?", "$json.provider === 'anthropic'", (2000, 160))
connect("Prompt", "Anthropic?")
http(
    "AI OpenAI",
    "={{ $json.url }}",
    "$json.request",
    (2220, 60),
    cred="openai",
    timeout=60000,
    onError="continueErrorOutput",
)
http(
    "AI Anthropic",
    "={{ $json.url }}",
    "$json.request",
    (2220, 260),
    cred="anthropic",
    headers={"anthropic-version": "2023-06-01"},
    timeout=60000,
    onError="continueErrorOutput",
)
connect("Anthropic?", "AI Anthropic", out=0)
connect("Anthropic?", "AI OpenAI", out=1)

READ_AI = r"""
// The AI's answer → what to do. For schedule, every slot it names must be one the hub sent:
// otherwise its text is dropped and the sent slots are proposed instead (never an invented time).
const ctx = $('Read envelope').first(0).json;
const answer = $input.first().json;
let content = '';
if (Array.isArray(answer.choices)) content = answer.choices[0]?.message?.content ?? '';
else if (Array.isArray(answer.content)) content = answer.content.filter((part) => part.type === 'text').map((part) => part.text).join('');
content = String(content || '').trim();
if (!content) throw new Error('the AI answered without any text');
let parsed = null;
const braces = content.match(/\{[\s\S]*\}/);
if (braces) { try { parsed = JSON.parse(braces[0]); } catch (e) { parsed = null; } }
if (!parsed || typeof parsed !== 'object') parsed = ctx.action === 'schedule' ? {} : { text: content };
let text = String(parsed.text ?? '').trim();
const handoff = parsed.handoff === true;
const decision = {
  text,
  status: handoff ? 'handoff' : 'done',
  handoff_reason: handoff ? String(parsed.handoff_reason || 'the AI asked for a person').slice(0, 500) : '',
  book_start: null,
  ai_slot_rejected: null,
  note_prefix: 'Mensagem enviada pelo assistente (WhatsApp)',
};
if (ctx.action === 'schedule') {
  const slots = ctx.scheduling.slots || [];
  const instant = (value) => { const t = Date.parse(String(value)); return Number.isNaN(t) ? null : t; };
  const find = (value) => { const t = instant(value); return t === null ? undefined : slots.find((slot) => instant(slot.start) === t); };
  const accepted = parsed.accepted_slot === undefined || parsed.accepted_slot === null || parsed.accepted_slot === '' ? null : parsed.accepted_slot;
  const proposed = Array.isArray(parsed.proposed_slots) ? parsed.proposed_slots : [];
  const invented = [accepted, ...proposed].filter((value) => value !== null && find(value) === undefined);
  const when = (iso) => {
    const parts = Object.fromEntries(new Intl.DateTimeFormat('pt-BR', {
      timeZone: ctx.timezone, weekday: 'long', day: '2-digit', month: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
    }).formatToParts(new Date(iso)).map((part) => [part.type, part.value]));
    return parts.weekday + ', ' + parts.day + '/' + parts.month + ' às ' + parts.hour + 'h' + parts.minute;
  };
  // A time written in the text ("às 23h", "15:30") must also be one of the slots, local time.
  const minutes = (iso) => {
    const parts = Object.fromEntries(new Intl.DateTimeFormat('pt-BR', { timeZone: ctx.timezone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' })
      .formatToParts(new Date(iso)).map((part) => [part.type, part.value]));
    return Number(parts.hour) * 60 + Number(parts.minute);
  };
  const offered = new Set(slots.map((slot) => minutes(slot.start)));
  const written = [...String(parsed.text ?? '').matchAll(/\b([01]?\d|2[0-3])\s*(?:h|:)\s*([0-5]\d)?/gi)]
    .map((match) => Number(match[1]) * 60 + Number(match[2] || 0));
  const stray = written.filter((value) => !offered.has(value));
  const intent = String(ctx.scheduling.intent || 'schedule');
  const proposal = 'Tenho estes horários disponíveis: ' + slots.map((slot) => when(slot.start)).join('; ') + '. Qual fica melhor para você?';
  if (intent === 'cancel' || intent === 'reschedule') {
    // The envelope names no appointment to cancel or move (booking another would leave the old
    // one standing): a person does it.
    decision.status = 'handoff';
    decision.handoff_reason = 'the customer asked to ' + (intent === 'cancel' ? 'cancel' : 'move') + ' a meeting';
    decision.text = intent === 'cancel'
      ? 'Certo! Vou pedir para o seu consultor confirmar o cancelamento com você.'
      : 'Certo! Vou pedir para o seu consultor remarcar a reunião com você.';
  } else if (!slots.length) {
    decision.status = 'handoff';
    decision.handoff_reason = 'no free slots to offer';
    decision.text = 'No momento não encontrei horários livres. Um consultor vai falar com você para combinar o melhor horário.';
  } else if (invented.length || stray.length || !parsed.text) {
    decision.ai_slot_rejected = [...invented.map(String), ...stray.map((value) => Math.floor(value / 60) + 'h' + String(value % 60).padStart(2, '0'))].join(', ').slice(0, 300) || 'no JSON answer';
    decision.status = 'done';
    decision.handoff_reason = '';
    decision.text = proposal;
  } else if (accepted !== null && !handoff) {
    decision.book_start = find(accepted).start;  // the hub's own string
  }
  decision.note_prefix = 'Agendamento pelo assistente (WhatsApp)';
}
if (!decision.text) throw new Error('the AI answer had no message text');
return [{ json: decision }];
"""
code("Read AI answer", READ_AI, (2440, 160), on_error="continueErrorOutput")
connect("AI OpenAI", "Read AI answer", out=0)
connect("AI Anthropic", "Read AI answer", out=0)
if_true("Book?", "!!$json.book_start", (2660, 160))
connect("Read AI answer", "Book?")
http(
    "Book appointment",
    "={{ $('Read envelope').first(0).json.booking_url }}",
    "{ lead: $('Read envelope').first(0).json.lead.id, start: $json.book_start,"
    " idempotency_key: $('Read envelope').first(0).json.idempotency_key }",
    (2880, 60),
    cred="hub_api",
    full=True,
    timeout=30000,
    onError="continueErrorOutput",
)
connect("Book?", "Book appointment", out=0)

READ_BOOKING = r"""
// The hub's booking answer: 201/200 booked (confirm), 409 taken (propose its alternatives).
const ctx = $('Read envelope').first(0).json;
const decision = $('Read AI answer').first(0).json;
const response = $input.first().json;
const code = Number(response.statusCode);
const body = response.body && typeof response.body === 'object' ? response.body : {};
const when = (iso) => {
  const parts = Object.fromEntries(new Intl.DateTimeFormat('pt-BR', {
    timeZone: ctx.timezone, weekday: 'long', day: '2-digit', month: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
  }).formatToParts(new Date(iso)).map((part) => [part.type, part.value]));
  return parts.weekday + ', ' + parts.day + '/' + parts.month + ' às ' + parts.hour + 'h' + parts.minute;
};
const name = String(ctx.lead.name || '').split(' ')[0];
if (code === 200 || code === 201) {
  const who = body.salesperson && body.salesperson.name ? ' com ' + body.salesperson.name : '';
  return [{ json: { ...decision, status: 'done', appointment: body,
    text: 'Perfeito' + (name ? ', ' + name : '') + '! Sua reunião' + who + ' está confirmada para ' + when(body.start) + '.' } }];
}
if (code === 409) {
  const alternatives = Array.isArray(body.alternatives) ? body.alternatives : [];
  const text = alternatives.length
    ? 'Esse horário acabou de ser reservado. Tenho estes disponíveis: ' + alternatives.map((slot) => when(slot.start)).join('; ') + '. Qual prefere?'
    : 'Esse horário não está mais disponível. Um consultor vai falar com você para combinar outro horário.';
  return [{ json: { ...decision, text, book_start: null, status: alternatives.length ? 'done' : 'handoff',
    handoff_reason: alternatives.length ? '' : 'slot taken and no alternatives', booking_conflict: body } }];
}
throw new Error('the hub refused the booking (HTTP ' + code + ') ' + String(body.detail || body.code || JSON.stringify(body)).slice(0, 300));
"""
code("Read booking", READ_BOOKING, (3100, 60), on_error="continueErrorOutput")
connect("Book appointment", "Read booking", out=0)

FIXED = r"""
// reminder and handoff need no AI: the text comes from the envelope.
const ctx = $('Read envelope').first(0).json;
const when = (iso) => {
  const parts = Object.fromEntries(new Intl.DateTimeFormat('pt-BR', {
    timeZone: ctx.timezone, weekday: 'long', day: '2-digit', month: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
  }).formatToParts(new Date(iso)).map((part) => [part.type, part.value]));
  return parts.weekday + ', ' + parts.day + '/' + parts.month + ' às ' + parts.hour + 'h' + parts.minute;
};
const lead = ctx.lead || {};
if (ctx.action === 'reminder') {
  const name = String(lead.name || '').split(' ')[0];
  const who = ctx.salesperson && ctx.salesperson.name ? ' com ' + ctx.salesperson.name : '';
  return [{ json: { status: 'done', handoff_reason: '', book_start: null, note_prefix: 'Lembrete enviado (WhatsApp)',
    text: 'Olá' + (name ? ', ' + name : '') + '! Lembrete: sua reunião' + who + ' é ' + when(ctx.appointment.start) + ' (horário de Brasília). Até lá!' } }];
}
const parts = ['Kommo Hub: o lead ' + (lead.name || 'sem nome') + ' precisa de você.'];
if (lead.phone) parts.push('Telefone: ' + lead.phone + '.');
if (ctx.area && ctx.area.name) parts.push('Área: ' + ctx.area.name + '.');
if (ctx.handoff && (ctx.handoff.explanation || ctx.handoff.reason)) parts.push('Motivo: ' + String(ctx.handoff.explanation || ctx.handoff.reason).slice(0, 300) + '.');
const last = ((ctx.conversation && ctx.conversation.last_messages) || []).filter((m) => m.direction === 'in').slice(-1)[0];
if (last && last.text) parts.push('Última mensagem: "' + String(last.text).slice(0, 300) + '".');
if (lead.kommo_lead_id && ctx.settings.kommo_base_url) parts.push(ctx.settings.kommo_base_url + '/leads/detail/' + lead.kommo_lead_id);
return [{ json: { status: 'done', handoff_reason: '', book_start: null, note_prefix: '', text: parts.join(' ') } }];
"""
code("Fixed message", FIXED, (1780, 420), on_error="continueErrorOutput")
connect("Needs AI?", "Fixed message", out=1)

# --- send on WhatsApp, note in Kommo, report back ---------------------------------------------------

COMPOSE = r"""
// Free text inside the customer's 24-hour window; outside it (or no conversation, or to a
// salesperson) the approved template, the text (or the lead's name) as its body parameter.
const ctx = $('Read envelope').first(0).json;
const decision = $input.first().json;
const s = ctx.settings;
if (!ctx.recipient) throw new Error(ctx.to_salesperson ? 'the salesperson has no phone number' : 'the lead has no phone number');
if (!s.whatsapp_phone_number_id) throw new Error('WHATSAPP_PHONE_NUMBER_ID is not set');
const text = String(decision.text).slice(0, 4096);
let payload;
if (ctx.window_open) {
  payload = { messaging_product: 'whatsapp', recipient_type: 'individual', to: ctx.recipient, type: 'text', text: { preview_url: false, body: text } };
} else {
  if (!s.template_name) throw new Error('outside the 24-hour window and WHATSAPP_TEMPLATE_NAME is not set');
  // Template parameters may not hold new lines, tabs or more than 4 spaces in a row.
  const raw = s.template_parameter === 'name' ? String(ctx.lead.name || 'cliente') : text;
  const parameter = raw.replace(/[\n\r\t]+/g, ' ').replace(/ {2,}/g, ' ').trim().slice(0, 1000);
  payload = { messaging_product: 'whatsapp', recipient_type: 'individual', to: ctx.recipient, type: 'template',
    template: { name: s.template_name, language: { code: s.template_language },
      components: [{ type: 'body', parameters: [{ type: 'text', text: parameter }] }] } };
}
const url = s.whatsapp_api_url + '/' + s.whatsapp_phone_number_id + '/messages';
return [{ json: { ...decision, text, whatsapp_url: url, whatsapp_payload: payload, kind: payload.type } }];
"""
code("Compose WhatsApp", COMPOSE, (3320, 300), on_error="continueErrorOutput")
connect("Book?", "Compose WhatsApp", out=1)
connect("Read booking", "Compose WhatsApp", out=0)
connect("Fixed message", "Compose WhatsApp", out=0)
http(
    "WhatsApp send",
    "={{ $json.whatsapp_url }}",
    "$json.whatsapp_payload",
    (3540, 300),
    cred="whatsapp",
    timeout=30000,
    onError="continueErrorOutput",
)
connect("Compose WhatsApp", "WhatsApp send")
if_true("Note?", "$('Read envelope').first(0).json.wants_note", (3760, 300))
connect("WhatsApp send", "Note?", out=0)
http(
    "Kommo note",
    "={{ $('Read envelope').first(0).json.settings.kommo_base_url }}/api/v4/leads/"
    "{{ $('Read envelope').first(0).json.lead.kommo_lead_id }}/notes",
    "[{ note_type: 'common', params: { text: ($('Compose WhatsApp').first(0).json.note_prefix"
    " + ($('Compose WhatsApp').first(0).json.kind === 'template' ? ' (modelo aprovado, fora da janela de 24 h)' : '')"
    " + ': ' + $('Compose WhatsApp').first(0).json.text).slice(0, 8000) } }]",
    (3980, 200),
    cred="kommo",
    timeout=30000,
    onError="continueErrorOutput",
)
connect("Note?", "Kommo note", out=0)

DONE = r"""
// The success callback (ARCHITECTURE §4.3): done, or handoff when a person must take over.
const ctx = $('Read envelope').first(0).json;
const sent = $('Compose WhatsApp').first(0).json;
const whatsapp = $('WhatsApp send').first(0).json;
let noteId = null;
if ($('Kommo note').isExecuted) {
  const notes = $('Kommo note').first(0).json?._embedded?.notes;
  noteId = Array.isArray(notes) && notes.length ? notes[0].id ?? null : null;
}
const callback = {
  idempotency_key: ctx.idempotency_key,
  status: sent.status === 'handoff' ? 'handoff' : 'done',
  whatsapp_message_id: whatsapp?.messages?.[0]?.id ?? null,
  kommo_note_id: noteId,
  // reply_text is what the customer got (the hub records it in the conversation); a handoff's
  // message went to the salesperson instead.
  reply_text: ctx.to_salesperson ? null : sent.text,
  salesperson_message: ctx.to_salesperson ? sent.text : undefined,
  appointment: sent.appointment ?? null,
  error: sent.status === 'handoff' ? sent.handoff_reason : null,
  execution_id: String($execution.id),
  message_type: sent.kind,
};
if (sent.ai_slot_rejected) callback.ai_slot_rejected = sent.ai_slot_rejected;
return [{ json: { callback_url: ctx.callback_url, callback } }];
"""
code("Done", DONE, (4200, 300))
connect("Note?", "Done", out=1)
connect("Kommo note", "Done", out=0)

FAILURE = r"""
// Any failed step ends here: a `failed` callback naming the step and the reason. Retryable
// (the hub re-delivers, the claim lets the new attempt through) when nothing reached the
// customer yet and the cause is temporary: a timeout, a network error, 429 or 5xx.
const ctx = $('Read envelope').first(0).json;
const step = $prevNode.name;
const item = $input.first().json;
const raw = item.error;
let message = typeof raw === 'string' ? raw : (raw && (raw.message || raw.description)) || item.message || 'unknown error';
if (raw && typeof raw === 'object' && raw.description && raw.description !== message) message += ' - ' + raw.description;
const status = Number((raw && (raw.httpCode || raw.status || raw.statusCode)) || (String(message).match(/^(\d{3})\b/) || [])[1] || 0);
const sentItem = $('WhatsApp send').isExecuted ? $('WhatsApp send').first(0)?.json : undefined;
const whatsappSent = !!(sentItem && Array.isArray(sentItem.messages));
const composed = $('Compose WhatsApp').isExecuted ? $('Compose WhatsApp').first(0)?.json : undefined;
const booked = $('Read booking').isExecuted ? $('Read booking').first(0)?.json : undefined;
const temporary = status === 0 || status === 408 || status === 429 || status >= 500;
const retryable = !whatsappSent && ['AI OpenAI', 'AI Anthropic', 'WhatsApp send', 'Book appointment'].includes(step) && temporary;
const callback = {
  idempotency_key: ctx.idempotency_key,
  status: 'failed',
  whatsapp_message_id: whatsappSent ? sentItem.messages[0]?.id ?? null : null,
  kommo_note_id: null,
  // What reached the customer (never the message to a salesperson).
  reply_text: whatsappSent && composed && !ctx.to_salesperson ? composed.text : null,
  appointment: booked?.appointment ?? null,
  error: (step + ': ' + String(message)).slice(0, 1000),
  retryable,
  failed_step: step,
  execution_id: String($execution.id),
};
return [{ json: { callback_url: ctx.callback_url, callback } }];
"""
code("Failure", FAILURE, (4200, 600))
for src in [
    "Prompt",
    "AI OpenAI",
    "AI Anthropic",
    "Read AI answer",
    "Book appointment",
    "Read booking",
    "Fixed message",
    "Compose WhatsApp",
    "WhatsApp send",
    "Kommo note",
]:
    connect(src, "Failure", out=1)

http(
    "Callback",
    "={{ $json.callback_url }}",
    "$json.callback",
    (4420, 400),
    timeout=15000,
    retryOnFail=True,
    maxTries=3,
    waitBetweenTries=2000,
)
connect("Done", "Callback")
connect("Failure", "Callback")

workflow = {
    "id": "kommoHubActions1",
    "name": "Kommo Hub actions",
    "active": False,
    "nodes": nodes,
    "connections": connections,
    "settings": {
        "executionOrder": "v1",
        "saveDataErrorExecution": "all",
        "saveDataSuccessExecution": "all",
        "saveManualExecutions": True,
        "callerPolicy": "workflowsFromSameOwner",
    },
    "pinData": {},
    "meta": {"templateCredsSetupCompleted": True},
    "tags": [],
}


def main() -> int:
    text = json.dumps(workflow, indent=2, ensure_ascii=False) + "\n"
    if "--check" in sys.argv:
        if OUT.read_text() != text:
            print(f"{OUT.name} is not what n8n/build_workflow.py writes: run it", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"{OUT}: {len(nodes)} nodes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
