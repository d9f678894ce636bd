//! The desktop WebSocket and the ports origin, end to end: a real server, the real sandbox with a real Xvnc inside,
//! a real WebSocket client speaking RFB, and a real HTTP client on the ports origin.

use std::path::Path;
use std::time::Duration;

use examroom_core::EnvironmentId;
use examroom_runtime::{ExecRequest, ExecutionRuntime};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use crate::server::{create, session_path, sid, wait_state, write_exam, Client, Options, TestServer};

const READY: Duration = Duration::from_secs(60);

fn exams(catalog: &Path) {
    let head = "title = \"T\"\ndescription = \"d\"\nduration = \"10m\"\n";
    write_exam(
        catalog,
        "desk",
        &format!(
            "{head}[environment]\nbase = \"host\"\nmemory = \"512M\"\ndesktop = true\nresolution = \"1024x768\"\n"
        ),
    );
    write_exam(catalog, "web", &format!("{head}[environment]\nbase = \"host\"\nmemory = \"256M\"\nports = [8000]\n"));
    write_exam(catalog, "plain", &format!("{head}[environment]\nbase = \"host\"\nmemory = \"256M\"\n"));
    // An image without an X server.
    write_exam(
        catalog,
        "no-x",
        &format!("{head}[environment]\nbase = \"image:it/tiny:1\"\nmemory = \"256M\"\ndesktop = true\n"),
    );
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open_desktop(s: &TestServer, id: &str, token: &str) -> Ws {
    let url = format!("{}{}/desktop", s.base.replacen("http", "ws", 1), session_path(id));
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("authorization", HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
    let (ws, _) = tokio::time::timeout(Duration::from_secs(30), tokio_tungstenite::connect_async(req))
        .await
        .expect("upgrade in time")
        .expect("the upgrade itself succeeds");
    ws
}

/// Reads binary data until `n` bytes have come (bounded); panics on a close.
async fn read_n(ws: &mut Ws, buf: &mut Vec<u8>, n: usize) -> Vec<u8> {
    while buf.len() < n {
        match tokio::time::timeout(Duration::from_secs(15), ws.next()).await.expect("data in time") {
            Some(Ok(Message::Binary(b))) => buf.extend_from_slice(&b),
            Some(Ok(Message::Close(f))) => panic!("closed: {f:?}"),
            Some(Ok(_)) => {}
            other => panic!("the stream ended: {other:?}"),
        }
    }
    buf.drain(..n).collect()
}

/// The close code a connection ends with (bounded).
async fn close_code(ws: &mut Ws) -> u16 {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await.expect("a close in time") {
            Some(Ok(Message::Close(Some(f)))) => return f.code.into(),
            Some(Ok(Message::Close(None))) | None | Some(Err(_)) => return 1005,
            Some(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn the_owner_gets_their_desktop_over_rfb_and_nobody_else_does() {
    let s = TestServer::start_with(Options { exams, ..Options::default() }).await;
    let c = Client::default();
    let (alice, bob) = (s.candidate("alice"), s.candidate("bob"));
    let id = sid(&create(&c, &s, &alice, "desk").await);
    let ready = wait_state(&c, &s, &alice, &id, READY, "ready").await;
    // The desktop's start was a visible step of provisioning.
    let ev = c.get(&s.url(&format!("{}/events", session_path(&id))), &alice).await;
    assert!(ev.text.contains("Starting your desktop"), "{}", ev.text);
    assert_eq!(ready["state"], "ready");

    // RFB through the WebSocket: version, no security (the server let only the owner in), the screen's size.
    let mut ws = open_desktop(&s, &id, &alice).await;
    let mut buf = Vec::new();
    assert_eq!(read_n(&mut ws, &mut buf, 12).await, b"RFB 003.008\n");
    ws.send(Message::Binary(b"RFB 003.008\n".to_vec().into())).await.unwrap();
    let n = read_n(&mut ws, &mut buf, 1).await[0] as usize;
    let types = read_n(&mut ws, &mut buf, n).await;
    assert!(types.contains(&1), "security type None offered: {types:?}");
    ws.send(Message::Binary(vec![1u8].into())).await.unwrap();
    assert_eq!(read_n(&mut ws, &mut buf, 4).await, [0, 0, 0, 0], "security result OK");
    ws.send(Message::Binary(vec![1u8].into())).await.unwrap(); // ClientInit, shared
    let init = read_n(&mut ws, &mut buf, 24).await;
    let (w, h) = (u16::from_be_bytes([init[0], init[1]]), u16::from_be_bytes([init[2], init[3]]));
    assert_eq!((w, h), (1024, 768), "the exam's resolution");
    // Attaching started the clock.
    let v = c.get(&s.url(&session_path(&id)), &alice).await;
    assert_eq!(v.body["state"], "active", "{}", v.text);

    // A second connection watches the same desktop (a reconnect); the first keeps going.
    let mut second = open_desktop(&s, &id, &alice).await;
    let mut buf2 = Vec::new();
    assert_eq!(read_n(&mut second, &mut buf2, 12).await, b"RFB 003.008\n");
    drop(second);

    // Not yours is not found; a proctor has no desktop here; an exam without a desktop has none.
    let mut other = open_desktop(&s, &id, &bob).await;
    assert_eq!(close_code(&mut other).await, 4404);
    let mut proctor = open_desktop(&s, &id, &s.proctor("pat")).await;
    assert_eq!(close_code(&mut proctor).await, 4403);
    let unknown = "00000000-0000-4000-8000-000000000000";
    let mut nothing = open_desktop(&s, unknown, &alice).await;
    assert_eq!(close_code(&mut nothing).await, 4404);

    // Submitting ends access at once.
    let a = c.post(&s.url(&format!("{}/submit", session_path(&id))), &alice, serde_json::json!({})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(close_code(&mut ws).await, 4410);
    let mut after = open_desktop(&s, &id, &alice).await;
    assert_eq!(close_code(&mut after).await, 4410);

    // An exam with no desktop.
    let plain = sid(&create(&c, &s, &bob, "plain").await);
    wait_state(&c, &s, &bob, &plain, READY, "ready").await;
    let mut none = open_desktop(&s, &plain, &bob).await;
    assert_eq!(close_code(&mut none).await, 4404);
    s.teardown().await;
}

/// A client that resolves every `*.localhost` name to 127.0.0.1 (as browsers do) and follows no redirect.
fn ports_client(s: &TestServer, names: &[String]) -> reqwest::Client {
    let addr = s.ports_addr.expect("a ports origin");
    let mut b = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(Duration::from_secs(30));
    for n in names {
        b = b.resolve(&format!("{n}.localhost"), addr);
    }
    b.build().unwrap()
}

/// A web server inside the environment: it answers with the Cookie header it received, and tries to set a cookie
/// and to allow a service worker.
const APP: &str = r#"
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("hello from inside; cookie=" + str(self.headers.get("Cookie")) + "; host=" + str(self.headers.get("Host"))).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Set-Cookie", "examroom_session=stolen; Path=/")
        self.send_header("Service-Worker-Allowed", "/")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", 8000), H).serve_forever()
"#;

#[tokio::test]
async fn a_port_inside_reaches_its_owners_browser_from_an_origin_of_its_own() {
    let s = TestServer::start_with(Options { exams, ports: true, ..Options::default() }).await;
    // Redirects are looked at, not followed.
    let c = Client {
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
    };
    let (alice, bob) = (s.candidate("alice"), s.candidate("bob"));
    let v = create(&c, &s, &alice, "web").await;
    let id = sid(&v);
    let v = wait_state(&c, &s, &alice, &id, READY, "ready").await;
    let env: EnvironmentId = v["execution_environment_id"].as_str().unwrap().parse().unwrap();
    let enter = |port: u16, path: &str| s.url(&format!("{}/ports/{port}{path}", session_path(&id)));

    // Nothing listens yet: said plainly, on examroom's own page.
    let a = c.get(&enter(8000, "/"), &alice).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (502, Some("port_not_listening")), "{}", a.text);
    // A port the exam does not list, another candidate, a proctor: refused.
    let a = c.get(&enter(9000, "/"), &alice).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (404, Some("port_not_listed")), "{}", a.text);
    let a = c.get(&enter(8000, "/"), &bob).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (404, Some("session_not_found")), "{}", a.text);
    let a = c.get(&enter(8000, "/"), &s.proctor("pat")).await;
    assert_eq!(a.status, 403, "{}", a.text);

    // The candidate starts their app inside (as they would from the terminal).
    let rt = s.runtime();
    let mut req = ExecRequest::shell(
        "cat > /root/app.py && (setsid python3 /root/app.py >/dev/null 2>&1 &) && \
         for i in $(seq 200); do curl -s -o /dev/null http://127.0.0.1:8000/ && exit 0; sleep 0.05; done; exit 1",
    );
    req.stdin = APP.as_bytes().to_vec();
    let out = rt.exec(&env, req).await.unwrap();
    assert_eq!(out.exit_code, Some(0), "{}", String::from_utf8_lossy(&out.stderr));

    // The way in: a redirect to the port's own host, with a short grant.
    let a = c.get(&enter(8000, "/page?x=1"), &alice).await;
    assert_eq!(a.status, 303, "{}", a.text);
    let location = a.headers["location"].to_str().unwrap().to_string();
    let name = format!("p8000-{id}");
    let port = s.ports_addr.unwrap().port();
    assert!(location.starts_with(&format!("http://{name}.localhost:{port}/__examroom/enter?grant=")), "{location}");
    assert!(a.headers.get("set-cookie").is_none(), "examroom's origin sets nothing for the port");

    let pc = ports_client(&s, std::slice::from_ref(&name));
    let r = pc.get(&location).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/page?x=1");
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set.starts_with("examroom_port=") && set.contains("HttpOnly"), "{set}");
    let cookie = set.split(';').next().unwrap().to_string();
    let origin = format!("http://{name}.localhost:{port}");

    // The page, from inside: the candidate's server never sees the port's cookie, and what it tries to set does not
    // reach the browser.
    let r = pc.get(format!("{origin}/page?x=1")).header("cookie", format!("{cookie}; theirs=1")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("set-cookie").is_none(), "Set-Cookie from inside is removed");
    assert!(r.headers().get("service-worker-allowed").is_none());
    let body = r.text().await.unwrap();
    assert!(body.starts_with("hello from inside"), "{body}");
    assert!(body.contains("cookie=theirs=1;") && !body.contains("examroom_port"), "{body}");
    assert!(body.contains("host=localhost:8000"), "{body}");

    // Without the cookie, with a grant replayed on another port's host, or as a service worker's script: refused.
    let r = pc.get(format!("{origin}/page")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let grant = location.split("grant=").nth(1).unwrap().split('&').next().unwrap().to_string();
    let other = format!("p8001-{id}");
    let pc2 = ports_client(&s, std::slice::from_ref(&other));
    let r =
        pc2.get(format!("http://{other}.localhost:{port}/__examroom/enter?grant={grant}&path=/")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = pc
        .get(format!("{origin}/sw.js"))
        .header("cookie", &cookie)
        .header("service-worker", "script")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A redirect after the grant stays on the host.
    let a = c.get(&enter(8000, "/"), &alice).await;
    let location = a.headers["location"].to_str().unwrap().replace("&path=/", "&path=//evil.example");
    let r = pc.get(&location).send().await.unwrap();
    assert_eq!(r.status(), 400, "{:?}", r.headers().get("location"));

    // Bob's own port cookie does not open Alice's port; and a grant naming Alice's session but Bob finds nothing.
    let bob_session = sid(&create(&c, &s, &bob, "web").await);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let bob_user = examroom_core::UserId::parse("bob").unwrap();
    let grant = |sid: &str| examroom_api::auth::PortGrant { sid: sid.to_string(), port: 8000 };
    let bobs = s.keys.mint_port_grant(&bob_user, grant(&bob_session), Duration::from_secs(60), now);
    let r = pc.get(format!("{origin}/page")).header("cookie", format!("examroom_port={bobs}")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let crossed = s.keys.mint_port_grant(&bob_user, grant(&id), Duration::from_secs(60), now);
    let r = pc.get(format!("{origin}/page")).header("cookie", format!("examroom_port={crossed}")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("session_not_found"));

    // The end: access stops, and the browser is told to forget what the port's pages stored.
    let a = c.post(&s.url(&format!("{}/submit", session_path(&id))), &alice, serde_json::json!({})).await;
    assert_eq!(a.status, 409, "a ready session is not submitted: {}", a.text);
    let a = c
        .send(
            c.http
                .post(s.url(&format!("{}/terminate", session_path(&id))))
                .bearer_auth(s.proctor("pat"))
                .json(&serde_json::json!({"reason": "test"})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let mut ended = None;
    for _ in 0..100 {
        let r = pc.get(format!("{origin}/page")).header("cookie", &cookie).send().await.unwrap();
        if r.status() == 410 {
            ended = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = ended.expect("410 once the session ended");
    assert!(r.headers()["clear-site-data"].to_str().unwrap().contains("cookies"));
    s.teardown().await;
}

#[tokio::test]
async fn a_desktop_that_cannot_start_fails_the_session_with_its_reason() {
    let s = TestServer::start_with(Options { exams, ..Options::default() }).await;
    crate::images::import_tiny(&s.sandbox_dir(), "it/tiny:1");
    let c = Client::default();
    let alice = s.candidate("alice");
    let id = sid(&create(&c, &s, &alice, "no-x").await);
    let v = wait_state(&c, &s, &alice, &id, READY, "failed").await;
    assert_eq!(v["failure"]["code"], "provisioning_failed", "{v}");
    // The proctor is told what failed: the X server, and why.
    let p = c.get(&s.url(&session_path(&id)), &s.proctor("pat")).await;
    let detail = p.body["failure"]["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.contains("desktop did not start") && detail.contains("Xvnc"), "{}", p.text);
    // Its environment was released (the teardown's leak check finds nothing of it either).
    assert!(s.runtime().list().await.unwrap().is_empty(), "the failed session's environment is gone");
    s.teardown().await;
}
