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
    p("/healthz", json!({ "get": op("Liveness", "all", "200", json!({"description": "alive"}), &[]) }));
    p(
        "/readyz",
        json!({ "get": op("Readiness: the store and the runtime answer", "all", "200", json!({"description": "ready"}), &[503]) }),
    );
    p(
        "/metrics",
        json!({ "get": op("Prometheus metrics", "operator", "200", json!({"description": "text exposition format"}), &[]) }),
    );
    p(
        "/api/v1/openapi.json",
        json!({ "get": op("This document", "all", "200", json!({"description": "OpenAPI 3"}), &[]) }),
    );
    p(
        "/api/v1/auth/session",
        json!({
            "post": op("Browser sign-in: exchange the Bearer token for the examroom_session cookie", "anyone with a token", "200", json!({"description": "signed in; Set-Cookie: examroom_session (HttpOnly, SameSite=Strict)"}), &auth),
            "get": op("Who is signed in: { user_id, role }", "anyone signed in", "200", ok("Me", "the caller"), &[401]),
            "delete": op("Sign out: ends the browser sign-in (its cookie is refused from then on) and clears the cookie; a bearer token stays valid", "anyone signed in", "204", json!({"description": "signed out"}), &[401, 403]),
        }),
    );
    p("/api/v1/exams", json!({ "get": op("The catalog", "all", "200", ok("ExamList", "exams"), &auth) }));
    p(
        "/api/v1/exams/{exam_id}",
        json!({ "get": {
        "parameters": [{ "name": "exam_id", "in": "path", "required": true, "schema": { "type": "string" } }],
        "summary": "One exam: title, description, duration (not its tasks)", "description": "Who: all.",
        "responses": { "200": ok("Exam", "the exam"), "401": error_ref(), "404": error_ref() } } }),
    );
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
        &[400, 401, 403],
    );
    list["parameters"] =
        json!([{ "name": "state", "in": "query", "required": false, "schema": { "type": "string", "enum": states } }]);
    p("/api/v1/sessions", json!({ "post": create, "get": list }));
    let with_id = |mut v: Value| {
        v["parameters"] = id_param();
        v
    };
    p(
        "/api/v1/sessions/{id}",
        json!({ "get": with_id(op("One session", "owner, proctor", "200", ok("Session", "the session"), &[401, 403, 404])) }),
    );
    p(
        "/api/v1/sessions/{id}/status",
        json!({ "get": with_id(op(
        "Live status (Server-Sent Events): `status` events carry the Session on every change; `heartbeat` events ({state, remaining_seconds}) come every 2 s; a final `status` event follows the final state",
        "owner, proctor", "200", json!({"description": "text/event-stream"}), &[401, 403, 404, 429])) }),
    );
    p(
        "/api/v1/sessions/{id}/result",
        json!({ "get": with_id(op(
            "The result: {status: pending | graded | not_graded, score, max_score, checks}. The owner sees it once the session has ended (checks only when the exam shows them, never output); a proctor sees everything",
            "owner, proctor", "200", ok("Result", "the result"), &[401, 403, 404, 409])) }),
    );
    p(
        "/api/v1/sessions/{id}/terminal",
        json!({ "get": with_id(op(
            "The terminal (WebSocket). Binary frames carry raw bytes both ways; the client sends {\"type\":\"resize\",\"cols\":N,\"rows\":N}; the server sends {\"type\":\"status\"}, {\"type\":\"notice\",\"message\"} and {\"type\":\"ended\",\"reason\",\"message\"}. The scrollback is replayed on connect. Close codes: 4401 unauthenticated, 4403 Origin refused, 4404 not found, 4409 not ready, 4410 ended, 4412 replaced by a newer connection",
            "owner", "101", json!({"description": "switching protocols"}), &[])) }),
    );
    p(
        "/api/v1/sessions/{id}/events",
        json!({ "get": with_id(op("The audit trail", "owner, proctor", "200", ok("EventList", "events, oldest first"), &[401, 403, 404])) }),
    );
    p(
        "/api/v1/sessions/{id}/tasks",
        json!({ "get": with_id(op("Task prompts (markdown)", "owner once ready; proctor", "200", json!({"description": "tasks"}), &[401, 403, 404, 409])) }),
    );
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
                    "properties": { "exam_id": { "type": "string" } } },
                "Terminate": { "type": "object", "required": ["reason"], "additionalProperties": false,
                    "properties": { "reason": { "type": "string", "minLength": 1, "maxLength": 500 }, "grade": { "type": "boolean", "default": true } } },
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
                        "resources_released_at": { "type": "string", "format": "date-time", "nullable": true } } },
                "SessionList": { "type": "object", "properties": { "sessions": { "type": "array", "items": { "$ref": "#/components/schemas/Session" } } } },
                "Event": { "type": "object", "properties": { "seq": { "type": "integer" }, "at": { "type": "string", "format": "date-time" },
                    "kind": { "type": "string", "enum": ["transition", "progress", "attach", "takeover", "proctor_action", "reconcile"] },
                    "from": { "type": "string", "nullable": true }, "to": { "type": "string", "nullable": true },
                    "reason": { "type": "string" }, "actor": { "type": "string" }, "data": { "type": "object" } } },
                "EventList": { "type": "object", "properties": { "events": { "type": "array", "items": { "$ref": "#/components/schemas/Event" } } } },
                "Exam": { "type": "object", "properties": { "id": { "type": "string" }, "title": { "type": "string" },
                    "description": { "type": "string" }, "duration_seconds": { "type": "integer" },
                    "attempts": { "type": "integer", "nullable": true, "description": "attempts each candidate has (proctors may grant more); null: no limit" } } },
                "Result": { "type": "object", "required": ["status", "score", "max_score", "checks"],
                    "properties": { "status": { "type": "string", "enum": ["pending", "graded", "not_graded"] },
                        "score": { "type": "integer" }, "max_score": { "type": "integer" },
                        "reason": { "type": "string" }, "graded_at": { "type": "integer", "description": "unix milliseconds" },
                        "checks": { "type": "array", "items": { "type": "object", "properties": {
                            "task_id": { "type": "string" }, "check_id": { "type": "string" },
                            "description": { "type": "string" }, "passed": { "type": "boolean" },
                            "weight": { "type": "integer" }, "duration_ms": { "type": "integer" },
                            "error": { "type": "string" }, "output_tail": { "type": "string", "description": "proctors only" } } } } } },
                "ExamList": { "type": "object", "properties": { "exams": { "type": "array", "items": { "$ref": "#/components/schemas/Exam" } } } }
            }
        },
        "security": [{ "bearer": [] }, { "cookie": [] }],
        "paths": session_ops,
    });
    // Added on its own: one more schema inside the literal above exceeds json!'s recursion limit.
    doc["components"]["schemas"]["Attempts"] = json!({ "type": "object",
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
    doc["components"]["schemas"]["GrantAttempts"] = json!({ "type": "object", "required": ["user_id", "reason"],
        "additionalProperties": false, "properties": {
            "user_id": { "type": "string" },
            "extra": { "type": "integer", "minimum": 1, "maximum": 100, "default": 1 },
            "reason": { "type": "string", "minLength": 1, "maxLength": 500 } } });
    doc["components"]["schemas"]["Me"] = json!({ "type": "object", "required": ["user_id", "role"],
        "properties": { "user_id": { "type": "string" }, "role": { "type": "string", "enum": ["candidate", "proctor"] } } });
    doc
}

/// `GET /api/v1/openapi.json`.
pub async fn serve() -> Response {
    crate::routes::json_value(StatusCode::OK, &document())
}
