//! The OpenAPI 3 document, written to agree with `shared/notes/contract.md`. A snapshot test keeps
//! `docs/openapi.json` equal to it, so that any change to the API surface is a visible change to that file.

use axum::http::StatusCode;
use axum::response::Response;
use examroom_core::{DomainError, EndReason, FailureCode, SessionState};
use serde_json::{json, Value};

fn error_ref() -> Value {
    json!({ "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

fn ok(schema: &str, what: &str) -> Value {
    json!({ "description": what, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } })
}

fn errors(codes: &[u16]) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    for c in codes {
        let names: Vec<&str> = DomainError::CODES.iter().filter(|(_, s)| s == c).map(|(n, _)| *n).collect();
        let mut e = error_ref();
        e["description"] = json!(format!("error: {}", names.join(", ")));
        m.insert(c.to_string(), e);
    }
    m
}

fn op(summary: &str, who: &str, ok_code: &str, ok_body: Value, errs: &[u16]) -> Value {
    let mut responses = errors(errs);
    responses.insert(ok_code.to_string(), ok_body);
    json!({ "summary": summary, "description": format!("Who: {who}."), "responses": responses })
}

/// An operation that needs no credentials.
fn public(mut v: Value) -> Value {
    v["security"] = json!([]);
    v
}

/// A 200 answer whose JSON body is described inline.
fn ok_inline(schema: Value, what: &str) -> Value {
    json!({ "description": what, "content": { "application/json": { "schema": schema } } })
}

/// `{"status": <value>}`, the body of the health endpoints.
fn status_body(value: &str) -> Value {
    json!({ "type": "object", "required": ["status"], "properties": { "status": { "type": "string", "enum": [value] } } })
}

/// `/readyz`'s body: `{"status": "ready", "backends": {"sandbox": "ok", "docker": "…why not…"}}`.
fn ready_body() -> Value {
    let mut v = status_body("ready");
    v["properties"]["backends"] = json!({ "type": "object", "additionalProperties": { "type": "string" },
        "description": "each enabled backend: `ok` (followed by a caveat, such as Docker's writable layers being unbounded by the operator's choice), or why it cannot make environments now" });
    v
}

fn id_param() -> Value {
    json!([{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" },
        "description": "exam_session_id. Another candidate's session, a random id and a malformed id all answer 404 session_not_found." }])
}

/// The document.
pub fn document() -> Value {
    let states: Vec<&str> = SessionState::ALL.iter().map(|s| s.as_str()).collect();
    let reasons: Vec<&str> = EndReason::ALL.iter().map(|s| s.as_str()).collect();
    let codes: Vec<&str> = FailureCode::ALL.iter().map(|s| s.as_str()).collect();
    let auth = [401u16];
    let mut session_ops = serde_json::Map::new();
    let mut p = |path: &str, v: Value| {
        session_ops.insert(path.to_string(), v);
    };
    p(
        "/healthz",
        json!({ "get": public(op("Liveness", "all, without credentials", "200", ok_inline(status_body("ok"), "alive"), &[])) }),
    );
    p(
        "/readyz",
        json!({ "get": public(op("Readiness: the store answers and at least one backend can make environments; `backends` says, per enabled backend, `ok` or why not (for example Docker down: exams on the other backends keep working)", "all, without credentials", "200",
            ok_inline(ready_body(), "ready"), &[503])) }),
    );
    p(
        "/metrics",
        json!({ "get": public(op("Prometheus metrics (text exposition format 0.0.4); 404 when the server runs without a recorder", "operators, without credentials (keep it off the public network)", "200",
            json!({"description": "text exposition format", "content": { "text/plain": { "schema": { "type": "string" } } } }), &[404])) }),
    );
    p(
        "/api/v1/openapi.json",
        json!({ "get": public(op("This document", "all, without credentials", "200", ok_inline(json!({ "type": "object" }), "OpenAPI 3"), &[])) }),
    );
    let mut sign_in = op(
        "Browser sign-in: exchange the Bearer token for the examroom_session cookie",
        "anyone with a token (Bearer only)",
        "200",
        ok("SignedIn", "signed in; Set-Cookie: examroom_session (HttpOnly, SameSite=Strict)"),
        &auth,
    );
    sign_in["security"] = json!([{ "bearer": [] }]);
    p(
        "/api/v1/auth/session",
        json!({
            "post": sign_in,
            "get": op("Who is signed in: { user_id, role }", "anyone signed in", "200", ok("Me", "the caller"), &[401]),
            "delete": op("Sign out: ends the browser sign-in (its cookie is refused from then on) and clears the cookie; a bearer token stays valid", "anyone signed in", "204", json!({"description": "signed out"}), &[401, 403]),
        }),
    );
    p("/api/v1/exams", json!({ "get": op("The catalog", "all", "200", ok("ExamList", "exams"), &auth) }));
    let mut exam =
        op("One exam: title, description, duration (not its tasks)", "all", "200", ok("Exam", "the exam"), &[401, 404]);
    exam["parameters"] = json!([{ "name": "exam_id", "in": "path", "required": true, "schema": { "type": "string" } }]);
    p("/api/v1/exams/{exam_id}", json!({ "get": exam }));
    let exam_param = json!([{ "name": "exam_id", "in": "path", "required": true, "schema": { "type": "string" } }]);
    let mut attempts_get = op(
        "A candidate's attempts at the exam: what the exam allows, what proctors granted, what is used and left (null: no limit). Attempts are sessions that reached active and did not end failed",
        "candidate: own (user_id absent or their own); proctor: ?user_id= (required), with the grants",
        "200",
        ok("Attempts", "the attempts"),
        &[400, 401, 403, 404],
    );
    attempts_get["parameters"] = exam_param.clone();
    if let Some(params) = attempts_get["parameters"].as_array_mut() {
        params.push(json!({ "name": "user_id", "in": "query", "required": false, "schema": { "type": "string" } }));
    }
    let mut attempts_post = op(
        "Grant a candidate more attempts at the exam, with a reason (recorded, append-only)",
        "proctor",
        "201",
        ok("Attempts", "the candidate's attempts after the grant"),
        &[400, 401, 403, 404],
    );
    attempts_post["parameters"] = exam_param;
    attempts_post["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/GrantAttempts" } } } });
    p("/api/v1/exams/{exam_id}/attempts", json!({ "get": attempts_get, "post": attempts_post }));
    let mut pools = op(
        "Warm pools: per exam, its size, what it aims for now (size plus announced candidates, less their claims), its environments (made ahead of demand, each taken by one candidate) and its announcements",
        "proctor",
        "200",
        ok("Pools", "every exam with a pool, an announcement or pooled environments"),
        &[401, 403],
    );
    pools["responses"]["403"]["description"] = json!("forbidden: not a proctor");
    p("/api/v1/pools", json!({ "get": pools }));
    let mut images = op(
        "The image store: every image (its names, manifest digest, unpacked size, layers and the exams that run on it), and the images exams ask for that are missing (import them with `examroom image import`)",
        "proctor",
        "200",
        ok("Images", "the images"),
        &[401, 403],
    );
    images["responses"]["403"]["description"] = json!("forbidden: not a proctor");
    p("/api/v1/images", json!({ "get": images }));
    let mut schedule = op(
        "Announce candidates for an exam: its pool fills for them ahead of their start (from `at` less a lead), at the rate the server allows, and holds them until an hour after `at`",
        "proctor",
        "201",
        ok("PoolSchedule", "announced; Location names the announcement"),
        &[400, 401, 403, 404],
    );
    schedule["parameters"] =
        json!([{ "name": "exam_id", "in": "path", "required": true, "schema": { "type": "string" } }]);
    schedule["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/NewPoolSchedule" } } } });
    p("/api/v1/pools/{exam_id}/schedule", json!({ "post": schedule }));
    let mut cancel =
        op("Cancel an announcement", "proctor", "204", json!({ "description": "cancelled" }), &[401, 403, 404]);
    cancel["parameters"] = json!([
        { "name": "exam_id", "in": "path", "required": true, "schema": { "type": "string" } },
        { "name": "schedule_id", "in": "path", "required": true, "schema": { "type": "integer" } }
    ]);
    p("/api/v1/pools/{exam_id}/schedule/{schedule_id}", json!({ "delete": cancel }));
    let mut create = op(
        "Start an exam",
        "candidate",
        "201",
        ok("Session", "created; provisioning runs in the background"),
        &[400, 401, 403, 404, 409, 429, 503],
    );
    create["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/CreateSession" } } } });
    create["responses"]["409"]["description"] = json!("active_session_exists: the error carries session_id");
    create["responses"]["503"]["description"] = json!("capacity_exhausted, with Retry-After");
    create["responses"]["403"]["description"] =
        json!("forbidden (not a candidate); attempts_exhausted: every attempt at this exam is used, ask a proctor");
    create["responses"]["429"]["description"] =
        json!("rate_limited: too many sessions started in the last minute, with Retry-After");
    let mut list = op(
        "Sessions: a candidate's own; a proctor's: all",
        "candidate: own; proctor: all",
        "200",
        ok("SessionList", "sessions"),
        &[400, 401],
    );
    list["parameters"] = json!([{ "name": "state", "in": "query", "required": false, "schema": { "type": "string", "enum": states },
        "description": "only sessions in this state; an empty or unknown state is 400 invalid_request" }]);
    p("/api/v1/sessions", json!({ "post": create, "get": list }));
    let with_id = |mut v: Value| {
        v["parameters"] = id_param();
        v
    };
    p(
        "/api/v1/sessions/{id}",
        json!({ "get": with_id(op("One session", "owner, proctor", "200", ok("Session", "the session"), &[401, 404])) }),
    );
    p(
        "/api/v1/sessions/{id}/status",
        json!({ "get": with_id(op(
        "Live status (Server-Sent Events): `status` events carry the Session on every change; `heartbeat` events ({state, remaining_seconds}) come every 2 s; a final `status` event follows the final state",
        "owner, proctor", "200", json!({"description": "the event stream; the schema is one event's", "content": { "text/event-stream": { "schema": { "$ref": "#/components/schemas/StatusEvent" } } } }), &[401, 403, 404, 429])) }),
    );
    p(
        "/api/v1/sessions/{id}/result",
        json!({ "get": with_id(op(
            "The result: {status: pending | graded | not_graded, score, max_score, checks}. The owner sees it once the session has ended (checks only when the exam shows them, never output); a proctor sees everything",
            "owner, proctor", "200", ok("Result", "the result"), &[401, 404, 409])) }),
    );
    p(
        "/api/v1/sessions/{id}/terminal",
        json!({ "get": with_id(op(
            "The terminal (WebSocket). Binary frames carry raw bytes both ways; the client sends {\"type\":\"resize\",\"cols\":N,\"rows\":N}; the server sends {\"type\":\"status\"}, {\"type\":\"notice\",\"message\"} and {\"type\":\"ended\",\"reason\",\"message\"}. The scrollback is replayed on connect. `?terminal=NAME` attaches another of the session's open terminals (GET …/terminals; \"main\" when absent); a terminal that is not open, or a malformed query, closes with 4404. Flow control (optional): a client that sends {\"type\":\"flow_control\",\"window\":N} (the window is optional: 16 KiB to 1 MiB, default 256 KiB) must then acknowledge the output it has consumed with {\"type\":\"ack\",\"bytes\":N}, N being the bytes of binary frames consumed since its previous ack, counted from the start of the connection; while a window is unacknowledged the server stops reading the terminal (the program writing waits; nothing is dropped). A client that does not ask for it is never held back, and is dropped if it falls 1 MiB behind (it reconnects to the replay). An upgrade is always accepted, and refusals are close codes: 4401 unauthenticated, 4403 Origin refused or not a candidate, 4404 not found, 4409 not ready, 4410 ended, 4412 replaced by a newer connection. A request that is not a WebSocket upgrade gets the same checks as HTTP errors (401, 403, 404), and then 400 invalid_request",
            "owner", "101", json!({"description": "switching protocols"}), &[400, 401, 403, 404])) }),
    );
    p(
        "/api/v1/sessions/{id}/desktop",
        json!({ "get": with_id(op(
            "The desktop (WebSocket), for exams with one: binary frames carry RFB (VNC) both ways, for a client such as noVNC, relayed to the VNC server on the environment's own loopback; the server adds no frames of its own. Attaching starts the clock of a ready session. Several connections may watch one desktop. An upgrade is always accepted, and refusals are close codes: 4401 unauthenticated, 4403 Origin refused or not a candidate, 4404 not found or the exam has no desktop, 4409 not ready, 4410 ended (also the moment the session leaves active), 1011 the desktop could not be reached. A request that is not a WebSocket upgrade gets the same checks as HTTP errors (401, 403, 404), and then 400 invalid_request",
            "owner", "101", json!({"description": "switching protocols"}), &[400, 401, 403, 404])) }),
    );
    let mut ports = op(
        "The way into a port inside the environment, for its owner's browser: only a port the exam lists, while the session is ready or active (it does not start the clock). Answers 303 to the port's own origin (a host per session and port, never examroom's) with a grant valid for 60 s, which that origin turns into a cookie of its own; the page is then served from there, proxied to the port (HTTP and WebSocket), with Set-Cookie and Service-Worker-Allowed removed, and Clear-Site-Data once the session has ended. 400 for a WebSocket upgrade here (a port's WebSockets are served from its own origin), 404 port_not_listed for a port the exam does not list, 502 port_not_listening when nothing listens on it, 503 when this server serves no ports",
        "owner",
        "303",
        json!({ "description": "to the port's own origin, with a short grant", "headers": { "Location": { "schema": { "type": "string" } } } }),
        &[400, 401, 403, 404, 409, 410, 502, 503],
    );
    ports["parameters"] = json!([
        id_param()[0].clone(),
        { "name": "port", "in": "path", "required": true, "schema": { "type": "integer", "minimum": 1, "maximum": 65535 }, "description": "the port inside the environment" },
        { "name": "path", "in": "path", "required": true, "schema": { "type": "string" }, "description": "the path to open there (may be empty)" }
    ]);
    p("/api/v1/sessions/{id}/ports/{port}/{path}", json!({ "get": ports }));
    p(
        "/api/v1/sessions/{id}/events",
        json!({ "get": with_id(op("The audit trail", "owner, proctor", "200", ok("EventList", "events, oldest first"), &[401, 404])) }),
    );
    p(
        "/api/v1/sessions/{id}/tasks",
        json!({ "get": with_id(op("Task prompts (markdown), never their checks", "owner once ready; proctor", "200", ok("TaskList", "tasks, in the exam's order"), &[401, 404, 409])) }),
    );
    let mut ws_change = with_id(op(
        "Change the workspace: each field given replaces the stored one (task ids must be the exam's; the notepad holds at most 32 KiB)",
        "owner, while ready or active",
        "200",
        ok("Workspace", "the workspace after the change"),
        &[400, 401, 403, 404, 409, 410],
    ));
    ws_change["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/WorkspaceChange" } } } });
    p(
        "/api/v1/sessions/{id}/workspace",
        json!({
            "get": with_id(op("The candidate's workspace, kept on the server: flagged and visited tasks, the notepad", "owner; proctor (also after the end)", "200", ok("Workspace", "the workspace"), &[401, 404])),
            "patch": ws_change,
        }),
    );
    p(
        "/api/v1/sessions/{id}/terminals",
        json!({
            "get": with_id(op("The open terminals (\"main\" first) and how many may be open at once", "owner; proctor", "200", ok("TerminalList", "the terminals"), &[401, 404])),
            "post": with_id(op(
                "Open another terminal with a fresh shell (it does not start the clock; attach with …/terminal?terminal=NAME). 409 too_many_terminals at the exam's limit; 400 after 32 opened in all",
                "owner, while ready or active", "201", ok("TerminalList", "the terminals, and `name`: the new one's"), &[400, 401, 403, 404, 409, 410, 503])),
        }),
    );
    let mut close_term = op(
        "Close a terminal the candidate opened: it leaves the list and can no longer be attached (\"main\" cannot be closed: 400)",
        "owner, while ready or active",
        "204",
        json!({"description": "closed"}),
        &[400, 401, 403, 404, 409, 410],
    );
    close_term["parameters"] = json!([
        id_param()[0].clone(),
        { "name": "name", "in": "path", "required": true, "schema": { "type": "string", "pattern": "^t[0-9]{1,4}$", "maxLength": 5 }, "description": "the terminal: t1, t2, … (\"main\" cannot be closed: 400); any other name is 404 terminal_not_found" }
    ]);
    p("/api/v1/sessions/{id}/terminals/{name}", json!({ "delete": close_term }));
    p(
        "/api/v1/sessions/{id}/start",
        json!({ "post": with_id(op("ready → active: the clock starts", "owner", "200", ok("Session", "started"), &[401, 403, 404, 409])) }),
    );
    p(
        "/api/v1/sessions/{id}/submit",
        json!({ "post": with_id(op("active → terminating (submitted)", "owner", "200", ok("Session", "submitted"), &[401, 403, 404, 409])) }),
    );
    let mut term = with_id(op(
        "End a session (proctor)",
        "proctor",
        "200",
        ok("Session", "terminating"),
        &[400, 401, 403, 404, 409],
    ));
    term["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Terminate" } } } });
    p("/api/v1/sessions/{id}/terminate", json!({ "post": term }));

    let mut doc = json!({
        "openapi": "3.0.3",
        "info": {
            "title": "examroom",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Isolated exam environments. Identity: `Authorization: Bearer <JWT>` (HS256; claims sub, exp, role) or the browser cookie `examroom_session`; cookie requests that change state need a matching Origin and `X-Examroom: 1`. Every error is {\"error\": {code, message, guidance}}."
        },
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" },
                "cookie": { "type": "apiKey", "in": "cookie", "name": "examroom_session" }
            },
            "schemas": {
                "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "object",
                    "required": ["code", "message", "guidance"],
                    "properties": {
                        "code": { "type": "string", "enum": DomainError::CODES.iter().map(|(c, _)| *c).collect::<Vec<_>>() },
                        "message": { "type": "string" }, "guidance": { "type": "string" },
                        "incident": { "type": "string" }, "session_id": { "type": "string" } } } } },
                "CreateSession": { "type": "object", "required": ["exam_id"], "additionalProperties": false,
                    "properties": { "exam_id": { "type": "string", "example": "quick-check" } } },
                "Terminate": { "type": "object", "required": ["reason"], "additionalProperties": false,
                    "properties": { "reason": { "type": "string", "minLength": 1, "maxLength": 500, "pattern": "\\S", "description": "why, for the trail; not only spaces" }, "grade": { "type": "boolean", "default": true } } },
                "Progress": { "type": "object", "required": ["step", "total", "message"],
                    "properties": { "step": { "type": "integer" }, "total": { "type": "integer" }, "message": { "type": "string" } } },
                "Failure": { "type": "object", "required": ["code", "message", "guidance"],
                    "properties": { "code": { "type": "string", "enum": codes }, "message": { "type": "string" },
                        "guidance": { "type": "string" }, "detail": { "type": "string", "description": "proctors only" } } },
                "Session": { "type": "object",
                    "required": ["exam_session_id", "user_id", "execution_environment_id", "exam_id", "state", "created_at", "remaining_seconds"],
                    "properties": {
                        "exam_session_id": { "type": "string" }, "id": { "type": "string" },
                        "user_id": { "type": "string" }, "execution_environment_id": { "type": "string" },
                        "exam_id": { "type": "string" },
                        "state": { "type": "string", "enum": states },
                        "progress": { "nullable": true, "allOf": [{ "$ref": "#/components/schemas/Progress" }] },
                        "created_at": { "type": "string", "format": "date-time" },
                        "ready_at": { "type": "string", "format": "date-time", "nullable": true },
                        "started_at": { "type": "string", "format": "date-time", "nullable": true },
                        "deadline": { "type": "string", "format": "date-time", "nullable": true },
                        "remaining_seconds": { "type": "integer", "description": "by the server's clock" },
                        "duration_seconds": { "type": "integer" },
                        "ended_at": { "type": "string", "format": "date-time", "nullable": true },
                        "end_reason": { "type": "string", "enum": reasons, "nullable": true },
                        "failure": { "nullable": true, "allOf": [{ "$ref": "#/components/schemas/Failure" }] },
                        "resources_released_at": { "type": "string", "format": "date-time", "nullable": true },
                        "exam_version": { "type": "string", "nullable": true, "description": "the version of the exam definition the session started on and keeps (a SHA-256 digest, hex); null for sessions from before versions" } } },
                "SessionList": { "type": "object", "required": ["sessions"], "properties": { "sessions": { "type": "array", "items": { "$ref": "#/components/schemas/Session" } } } },
                "Event": { "type": "object", "required": ["seq", "at", "kind", "from", "to", "reason", "actor"], "properties": { "seq": { "type": "integer" }, "at": { "type": "string", "format": "date-time" },
                    "kind": { "type": "string", "enum": ["transition", "progress", "attach", "takeover", "proctor_action", "reconcile"] },
                    "from": { "type": "string", "nullable": true }, "to": { "type": "string", "nullable": true },
                    "reason": { "type": "string" }, "actor": { "type": "string" }, "data": { "type": "object" } } },
                "EventList": { "type": "object", "required": ["events"], "properties": { "events": { "type": "array", "items": { "$ref": "#/components/schemas/Event" } } } },
                "Exam": { "type": "object", "required": ["id", "title", "description", "duration_seconds", "available", "version"], "properties": { "id": { "type": "string" }, "title": { "type": "string" },
                    "description": { "type": "string" }, "duration_seconds": { "type": "integer" },
                    "attempts": { "type": "integer", "nullable": true, "description": "attempts each candidate has (proctors may grant more); null: no limit" },
                    "available": { "type": "boolean", "description": "a session can be started here now (false: the image it runs on is not in the image store)" },
                    "unavailable_reason": { "type": "string", "description": "why not (for proctors: the cause and the command that fixes it)" },
                    "desktop": { "type": "object", "nullable": true, "description": "the environment's graphical desktop, if it has one (GET /api/v1/sessions/{id}/desktop)", "properties": { "width": { "type": "integer" }, "height": { "type": "integer" } } },
                    "ports": { "type": "array", "items": { "type": "integer" }, "description": "ports inside the environment its owner's browser may open (GET /api/v1/sessions/{id}/ports/{port}/)" },
                    "resources": { "type": "array", "description": "documentation links candidates may open during the exam (http or https)", "items": { "type": "object", "required": ["title", "url"], "properties": { "title": { "type": "string" }, "url": { "type": "string", "format": "uri" } } } },
                    "warnings_seconds": { "type": "array", "items": { "type": "integer" }, "description": "when the exam page warns that time runs out: seconds before the deadline, longest first" },
                    "terminals": { "type": "integer", "description": "how many terminals a candidate may have open at once" },
                    "version": { "type": "string", "description": "the version of the exam definition new sessions start on (a SHA-256 digest, hex); sessions keep theirs" } } },
                "Result": { "type": "object", "required": ["status", "score", "max_score", "checks"],
                    "properties": { "status": { "type": "string", "enum": ["pending", "graded", "not_graded"] },
                        "score": { "type": "integer" }, "max_score": { "type": "integer" },
                        "reason": { "type": "string" }, "graded_at": { "type": "integer", "description": "unix milliseconds" },
                        "checks": { "type": "array", "items": { "type": "object", "properties": {
                            "task_id": { "type": "string" }, "check_id": { "type": "string" },
                            "description": { "type": "string" }, "passed": { "type": "boolean" },
                            "weight": { "type": "integer" }, "duration_ms": { "type": "integer" },
                            "error": { "type": "string" }, "output_tail": { "type": "string", "description": "proctors only" } } } } } },
                "Workspace": { "type": "object", "required": ["flagged", "visited", "notepad"], "properties": {
                    "flagged": { "type": "array", "items": { "type": "string" }, "description": "task ids flagged for review" },
                    "visited": { "type": "array", "items": { "type": "string" }, "description": "task ids the candidate opened" },
                    "notepad": { "type": "string", "description": "the candidate's notes" } } },
                "WorkspaceChange": { "type": "object", "additionalProperties": false, "properties": {
                    "flagged": { "type": "array", "items": { "type": "string" } },
                    "visited": { "type": "array", "items": { "type": "string" } },
                    "notepad": { "type": "string", "maxLength": 32768 } } },
                "TerminalList": { "type": "object", "required": ["terminals", "limit"], "properties": {
                    "terminals": { "type": "array", "items": { "type": "object", "required": ["name"], "properties": { "name": { "type": "string" } } } },
                    "limit": { "type": "integer" }, "name": { "type": "string", "description": "after POST: the new terminal" } } },
                "ExamList": { "type": "object", "required": ["exams"], "properties": { "exams": { "type": "array", "items": { "$ref": "#/components/schemas/Exam" } } } }
            }
        },
        "security": [{ "bearer": [] }, { "cookie": [] }],
        "paths": session_ops,
    });
    // Added on its own: one more schema inside the literal above exceeds json!'s recursion limit.
    let schemas = &mut doc["components"]["schemas"];
    schemas["Attempts"] = json!({ "type": "object",
        "required": ["exam_id", "user_id", "limit", "granted", "allowed", "used", "remaining"],
        "properties": {
            "exam_id": { "type": "string" }, "user_id": { "type": "string" },
            "limit": { "type": "integer", "nullable": true, "description": "the exam's attempts; null: no limit" },
            "granted": { "type": "integer", "description": "extra attempts proctors granted" },
            "allowed": { "type": "integer", "nullable": true }, "used": { "type": "integer" },
            "remaining": { "type": "integer", "nullable": true },
            "grants": { "type": "array", "description": "proctors only", "items": { "type": "object", "properties": {
                "extra": { "type": "integer" }, "reason": { "type": "string" }, "actor": { "type": "string" },
                "at": { "type": "string", "format": "date-time" } } } } } });
    schemas["GrantAttempts"] = json!({ "type": "object", "required": ["user_id", "reason"],
        "additionalProperties": false, "properties": {
            "user_id": { "type": "string" },
            "extra": { "type": "integer", "minimum": 1, "maximum": 100, "default": 1 },
            "reason": { "type": "string", "minLength": 1, "maxLength": 500 } } });
    schemas["NewPoolSchedule"] = json!({ "type": "object", "required": ["candidates", "at"],
        "additionalProperties": false, "properties": {
            "candidates": { "type": "integer", "minimum": 1, "maximum": 10000 },
            "at": { "type": "string", "format": "date-time", "description": "when they start: RFC 3339, not in the past, at most 30 days ahead" } } });
    schemas["PoolSchedule"] = json!({ "type": "object",
        "required": ["id", "exam_id", "candidates", "at", "fill_from", "until", "created_at", "actor"],
        "properties": {
            "id": { "type": "integer" }, "exam_id": { "type": "string" }, "candidates": { "type": "integer" },
            "at": { "type": "string", "format": "date-time" },
            "fill_from": { "type": "string", "format": "date-time", "description": "when the pool starts filling for them" },
            "until": { "type": "string", "format": "date-time", "description": "when the announcement ends" },
            "created_at": { "type": "string", "format": "date-time" }, "actor": { "type": "string" } } });
    schemas["Pools"] = json!({ "type": "object", "required": ["max_environments", "fill_concurrency", "pools"],
        "properties": {
            "max_environments": { "type": "integer", "description": "the most pooled environments for all exams together" },
            "fill_concurrency": { "type": "integer", "description": "pooled environments made at once, at most" },
            "pools": { "type": "array", "items": { "type": "object",
                "required": ["exam_id", "size", "max_age_seconds", "target", "ready", "filling", "environments", "schedules"],
                "properties": {
                    "exam_id": { "type": "string" },
                    "size": { "type": "integer", "description": "kept ready at all times ([pool] size)" },
                    "max_age_seconds": { "type": "integer" },
                    "target": { "type": "integer", "description": "what the pool aims for now" },
                    "ready": { "type": "integer" }, "filling": { "type": "integer" },
                    "environments": { "type": "array", "items": { "type": "object",
                        "required": ["environment_id", "owner", "state", "created_at"], "properties": {
                            "environment_id": { "type": "string" }, "owner": { "type": "string", "description": "the label of the server that holds it" },
                            "state": { "type": "string", "enum": ["filling", "ready", "retiring"] },
                            "created_at": { "type": "string", "format": "date-time" },
                            "ready_at": { "type": "string", "format": "date-time", "nullable": true } } } },
                    "schedules": { "type": "array", "items": { "$ref": "#/components/schemas/PoolSchedule" } } } } } } });
    schemas["Images"] = json!({ "type": "object", "required": ["images", "missing"], "properties": {
        "images": { "type": "array", "items": { "type": "object", "required": ["names", "digest", "size_bytes", "layers", "exams"],
            "properties": {
                "names": { "type": "array", "items": { "type": "string" }, "description": "NAME:TAG names pointing at it" },
                "digest": { "type": "string", "description": "the manifest's digest (sha256:…), the image's identity" },
                "size_bytes": { "type": "integer", "description": "file content, unpacked" },
                "layers": { "type": "integer" },
                "exams": { "type": "array", "items": { "type": "string" }, "description": "ids of the exams whose base is this image" } } } },
        "missing": { "type": "array", "items": { "type": "object", "required": ["reference", "exams"], "properties": {
            "reference": { "type": "string", "description": "what the exams name (base = \"image:REF\")" },
            "exams": { "type": "array", "items": { "type": "string" } } } } } } });
    schemas["Me"] = json!({ "type": "object", "required": ["user_id", "role"],
        "properties": { "user_id": { "type": "string" }, "role": { "type": "string", "enum": ["candidate", "proctor"] } } });
    schemas["SignedIn"] = json!({ "type": "object", "required": ["user_id", "role", "expires_at"],
        "properties": { "user_id": { "type": "string" }, "role": { "type": "string", "enum": ["candidate", "proctor"] },
            "expires_at": { "type": "string", "format": "date-time", "description": "when the cookie (and the token) expires" } } });
    schemas["StatusEvent"] = json!({ "type": "object", "required": ["event", "data"], "properties": {
        "event": { "type": "string", "enum": ["status", "heartbeat"] },
        "data": { "type": "string", "description": "JSON: a Session for `status`; {state, remaining_seconds} for `heartbeat`" } } });
    schemas["TaskList"] = json!({ "type": "object", "required": ["tasks"], "properties": { "tasks": { "type": "array",
        "items": { "type": "object", "required": ["id", "title", "prompt", "points"], "properties": {
            "id": { "type": "string" }, "title": { "type": "string" }, "prompt": { "type": "string", "description": "markdown" },
            "points": { "type": "integer", "description": "the sum of the task's check weights" } } } } } });
    doc
}

/// `GET /api/v1/openapi.json`.
pub async fn serve() -> Response {
    crate::routes::json_value(StatusCode::OK, &document())
}

#[cfg(test)]
mod tests {
    use super::*;

    const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut ops = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for m in METHODS {
                if let Some(op) = item.get(m) {
                    ops.push((m.to_string(), path.clone(), op.clone()));
                }
            }
        }
        ops
    }

    #[test]
    fn every_response_has_a_description() {
        let doc = document();
        for (m, path, op) in operations(&doc) {
            for (code, r) in op["responses"].as_object().unwrap() {
                assert!(r["description"].as_str().is_some_and(|d| !d.is_empty()), "{m} {path} {code}: {r}");
            }
        }
    }

    #[test]
    fn only_the_open_endpoints_need_no_credentials() {
        let doc = document();
        let open = ["/healthz", "/readyz", "/metrics", "/api/v1/openapi.json"];
        for (m, path, op) in operations(&doc) {
            let none = op.get("security") == Some(&json!([]));
            assert_eq!(none, open.contains(&path.as_str()), "{m} {path}: security {:?}", op.get("security"));
        }
        assert_eq!(doc["paths"]["/api/v1/auth/session"]["post"]["security"], json!([{ "bearer": [] }]));
    }

    #[test]
    fn path_parameters_are_declared_and_refs_resolve() {
        let doc = document();
        for (m, path, op) in operations(&doc) {
            for name in path.split('/').filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}')) {
                let declared = op["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "path"));
                assert!(declared, "{m} {path}: {{{name}}} is not declared");
            }
        }
        let text = doc.to_string();
        for r in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &r[..r.find('"').unwrap()];
            assert!(doc["components"]["schemas"][name].is_object(), "dangling $ref {name}");
        }
    }

    #[test]
    fn every_answer_with_a_body_documents_its_body() {
        let doc = document();
        for (m, path, op) in operations(&doc) {
            for (code, r) in op["responses"].as_object().unwrap() {
                if code == "101" || code == "204" || code == "303" {
                    continue;
                }
                assert!(r["content"].is_object(), "{m} {path} {code} has no content: {r}");
            }
        }
    }
}
