//! `examroom bench terminal`: the terminal through the real WebSocket of an in-process server. Figures: keystroke
//! echo with idle sessions and while sessions start; `cat` throughput to a client that keeps up (with flow control,
//! as the page does, and without); echo in the other sessions while one floods; and Ctrl-C during a flood until the
//! prompt is on the screen of a client that renders at a fixed rate and acknowledges what it rendered (as xterm.js
//! does in the page).

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::bench::percentile;
use crate::bench_sessions::{BenchServer, StatusStream};

/// The page's flow-control window and acknowledgement batch (`web/src/terminal.js`).
const WINDOW: u64 = 128 * 1024;
const ACK_EVERY: u64 = 32 * 1024;

/// A terminal connection.
type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What `bench terminal` measures.
pub struct Params {
    /// Attached idle sessions.
    pub sessions: usize,
    /// Sessions started while echo is measured.
    pub starting: usize,
    /// Size of the file `cat`ed for the throughput figures.
    pub megabytes: usize,
    /// Rounds of flood, Ctrl-C and prompt.
    pub rounds: usize,
    /// The rendering rate of the simulated page, in MB/s.
    pub render_mbps: f64,
}

async fn ws_connect(base: &str, id: &str, token: &str) -> Result<Ws> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("{}/api/v1/sessions/{id}/terminal", base.replacen("http", "ws", 1));
    let mut req = url.into_client_request()?;
    req.headers_mut().insert("authorization", format!("Bearer {token}").parse()?);
    let (ws, _) = tokio_tungstenite::connect_async(req).await?;
    Ok(ws)
}

/// A terminal client: the binary bytes received, and, with flow control, those acknowledged.
struct Client {
    ws: Ws,
    flow: bool,
    received: u64,
    acked: u64,
}

impl Client {
    /// Connects; `flow`: with flow control, `Some(window)` or `None` for the server's default window.
    async fn connect(base: &str, id: &str, token: &str, flow: Option<Option<u64>>) -> Result<Client> {
        let mut ws = ws_connect(base, id, token).await?;
        match flow {
            Some(Some(w)) => ws.send(Message::text(format!(r#"{{"type":"flow_control","window":{w}}}"#))).await?,
            Some(None) => ws.send(Message::text(r#"{"type":"flow_control"}"#)).await?,
            None => {}
        }
        Ok(Client { ws, flow: flow.is_some(), received: 0, acked: 0 })
    }

    /// Waits until the replay is read and the shell answers.
    async fn sync(&mut self) -> Result<()> {
        self.send(b"echo sync-$((40+2))\n").await?;
        self.until(b"sync-42", Duration::from_secs(60)).await?;
        Ok(())
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.ws.send(Message::Binary(bytes.to_vec().into())).await?;
        Ok(())
    }

    /// Acknowledges what was received, in batches of `ACK_EVERY` as the page does (with flow control).
    async fn ack(&mut self) -> Result<()> {
        let n = self.received - self.acked;
        if self.flow && n >= ACK_EVERY {
            self.ws.send(Message::text(format!(r#"{{"type":"ack","bytes":{n}}}"#))).await?;
            self.acked = self.received;
        }
        Ok(())
    }

    /// The next binary message (text frames are skipped); an error after `within`.
    async fn next(&mut self, within: Duration) -> Result<bytes::Bytes> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await.context("terminal output timed out")? {
                Some(Ok(Message::Binary(b))) => {
                    self.received += b.len() as u64;
                    return Ok(b);
                }
                Some(Ok(Message::Close(f))) => bail!("terminal closed: {f:?}"),
                Some(Ok(_)) => {}
                Some(Err(e)) => bail!("terminal: {e}"),
                None => bail!("terminal ended"),
            }
        }
    }

    /// Reads (acknowledging at once) until `needle` appears; returns the bytes read.
    async fn until(&mut self, needle: &[u8], within: Duration) -> Result<usize> {
        let deadline = Instant::now() + within;
        let mut tail = Tail::new(needle);
        let mut total = 0;
        loop {
            let b = self.next(deadline.saturating_duration_since(Instant::now())).await?;
            self.ack().await?;
            total += b.len();
            if tail.push(&b) {
                return Ok(total);
            }
        }
    }
}

/// Looks for a needle across message boundaries.
struct Tail<'a> {
    needle: &'a [u8],
    buf: Vec<u8>,
}

impl<'a> Tail<'a> {
    fn new(needle: &'a [u8]) -> Tail<'a> {
        Tail { needle, buf: Vec::new() }
    }

    fn push(&mut self, b: &[u8]) -> bool {
        self.buf.extend_from_slice(b);
        // Candidates by their first byte, then a comparison: a comparison at every position would cost the client
        // more than the terminal costs the server.
        let (first, n) = (self.needle[0], self.needle.len());
        let mut from = 0;
        while let Some(at) = self.buf[from..].iter().position(|&c| c == first) {
            let at = from + at;
            if self.buf.len() - at >= n && &self.buf[at..at + n] == self.needle {
                return true;
            }
            from = at + 1;
        }
        let keep = self.buf.len().saturating_sub(self.needle.len());
        self.buf.drain(..keep);
        false
    }
}

/// One keystroke's echo: a unique printable character typed, then erased.
async fn echo_once(c: &mut Client, k: usize) -> Result<Duration> {
    let ch = [b'a' + (k % 26) as u8];
    let t0 = Instant::now();
    c.send(&ch).await?;
    c.until(&ch, Duration::from_secs(30)).await?;
    let d = t0.elapsed();
    c.send(b"\x15").await?; // Ctrl-U: erase the line
    Ok(d)
}

async fn ready_session(http: &reqwest::Client, base: &str, token: &str, exam: &str) -> Result<String> {
    let r = http
        .post(format!("{base}/api/v1/sessions"))
        .bearer_auth(token)
        .json(&serde_json::json!({"exam_id": exam}))
        .send()
        .await?;
    if r.status() != 201 {
        bail!("create answered {}", r.status());
    }
    let v: serde_json::Value = r.json().await?;
    let id = v["id"].as_str().context("no id")?.to_string();
    let sse = http.get(format!("{base}/api/v1/sessions/{id}/status")).bearer_auth(token).send().await?;
    let mut st = StatusStream { body: Box::pin(sse.bytes_stream()), buf: String::new() };
    st.until("ready").await?;
    Ok(id)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn summary(mut v: Vec<Duration>) -> String {
    v.sort();
    format!(
        "n={}: p50 {}  p99 {}  max {}",
        v.len(),
        ms(percentile(&v, 50.0)),
        ms(percentile(&v, 99.0)),
        ms(v.last().copied().unwrap_or_default())
    )
}

/// `cat` of the prepared file; returns MB/s and the bytes received.
async fn cat_throughput(c: &mut Client) -> Result<(f64, usize, f64)> {
    let t0 = Instant::now();
    c.send(b"cat /tmp/big; echo END-$((2+2))\n").await?;
    let bytes = c.until(b"END-4", Duration::from_secs(600)).await?;
    let secs = t0.elapsed().as_secs_f64();
    Ok((bytes as f64 / 1e6 / secs, bytes, secs))
}

/// The ceiling of the throughput figure: `cat` of a file of the same lines through a bare PTY on the host, whose
/// master is read by a loop that does nothing else. Returns MB/s.
fn bare_pty(megabytes: usize) -> Result<f64> {
    use std::io::{Read, Write};
    let mut file = tempfile::NamedTempFile::new_in("/tmp")?;
    let line = b"examroom-throughput-line-of-one-hundred-bytes-0123456789012345678901234567890123456789012345\n";
    let block: Vec<u8> = line.iter().copied().cycle().take(line.len() * 10_000).collect();
    for _ in 0..megabytes {
        file.write_all(&block)?;
    }
    file.flush()?;
    let pty = nix::pty::openpty(None, None)?;
    let mut child = std::process::Command::new("cat")
        .arg(file.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::from(pty.slave))
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let mut master = std::fs::File::from(pty.master);
    let mut buf = vec![0u8; 256 * 1024];
    let (t0, mut total) = (Instant::now(), 0usize);
    loop {
        match master.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // EIO once the writer has gone.
            Err(_) => break,
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    child.wait()?;
    Ok(total as f64 / 1e6 / secs)
}

/// One round: `yes` for `flood`, Ctrl-C, and the time until the prompt has been rendered by a page that renders
/// `rate` bytes per second and acknowledges each message once it has rendered it. Returns that time and the bytes
/// rendered after the Ctrl-C.
async fn ctrl_c_round(c: &mut Client, flood: Duration, rate: f64) -> Result<(Duration, u64)> {
    // The page's rendering clock: when it will have rendered everything received so far.
    let mut rendered_at = tokio::time::Instant::now();
    let mut render = |n: usize| {
        rendered_at = rendered_at.max(tokio::time::Instant::now()) + Duration::from_secs_f64(n as f64 / rate);
        rendered_at
    };
    c.send(b"yes\n").await?;
    let until = Instant::now() + flood;
    while Instant::now() < until {
        let b = c.next(Duration::from_secs(30)).await?;
        tokio::time::sleep_until(render(b.len())).await;
        c.ack().await?;
    }
    let t0 = Instant::now();
    c.send(b"\x03").await?;
    let mut tail = Tail::new(b"READY> ");
    let mut after = 0u64;
    loop {
        let b = c.next(Duration::from_secs(120)).await?;
        tokio::time::sleep_until(render(b.len())).await;
        c.ack().await?;
        after += b.len() as u64;
        if tail.push(&b) {
            return Ok((t0.elapsed(), after));
        }
    }
}

pub async fn run(p: Params) -> Result<()> {
    let Params { sessions, starting, megabytes, rounds, render_mbps } = p;
    // Two exams: `bench` for the many idle and starting sessions (small, so that all of them fit the memory budget),
    // and `bench-big` for the two that hold the `cat` file on their tmpfs (charged to their memory).
    let big = tempfile::Builder::new().prefix("examroom-bench-").tempdir_in("/tmp")?;
    let big_exam = big.path().join("bench-big");
    std::fs::create_dir_all(&big_exam)?;
    std::fs::write(
        big_exam.join("exam.toml"),
        format!(
            "id = \"bench-big\"\ntitle = \"Bench\"\ndescription = \"room for the cat file\"\nduration = \"30m\"\n\
             [environment]\nbase = \"host\"\nmemory = \"{}M\"\ndisk = \"{}M\"\npids = 256\ncpu = 1\n",
            megabytes * 2 + 256,
            megabytes * 2 + 64
        ),
    )?;
    // 32 MiB each (bash at a prompt uses about 1.3 MiB): 500 idle sessions fit this host's admission budget.
    let srv = BenchServer::start_with(
        "base = \"host\"\nmemory = \"32M\"\npids = 256\ncpu = 1\n",
        (sessions + starting + 2) * 2,
        Some(&big_exam),
    )
    .await?;
    let base = srv.base.clone();
    println!(
        "examroom bench terminal --sessions {sessions} --starting {starting} --megabytes {megabytes} --rounds {rounds} \
         --render-mbps {render_mbps}"
    );
    let http = reqwest::Client::new();
    let token = |name: String| srv.token(&name);
    // The idle sessions, each attached (as scripts do: no flow control), each at a quiet prompt.
    let mut socks = Vec::new();
    for i in 0..sessions.max(1) {
        let t = token(format!("idle-{i}"))?;
        let id = ready_session(&http, &base, &t, "bench").await?;
        let mut c = Client::connect(&base, &id, &t, None).await?;
        c.send(b"PS1='$ '; echo up-$((40+2))\n").await?;
        c.until(b"up-42", Duration::from_secs(30)).await?;
        socks.push(c);
    }
    // Echo with every session idle: round-robin keystrokes.
    let mut idle = Vec::new();
    for k in 0..(sessions * 10).max(100) {
        let n = socks.len();
        idle.push(echo_once(&mut socks[k % n], k).await?);
    }
    println!("keystroke echo, {sessions} idle sessions ({})", summary(idle));
    // The server runs in this process, beside its clients: an upper bound for the server's own figures.
    let rss_kib = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().trim_end_matches("kB").trim().to_string()))
        })
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0);
    println!(
        "with {sessions} live sessions attached: this process (the server and its {sessions} WebSocket clients) holds \
         {:.0} MiB resident and {fds} descriptors",
        rss_kib as f64 / 1024.0
    );

    // Echo while `starting` sessions are being created.
    let mut starters = Vec::new();
    for i in 0..starting {
        let (http, base, t) = (http.clone(), base.clone(), token(format!("starting-{i}"))?);
        starters.push(tokio::spawn(async move { ready_session(&http, &base, &t, "bench").await }));
    }
    let mut busy = Vec::new();
    let mut k = 0;
    while starters.iter().any(|t| !t.is_finished()) {
        let n = socks.len();
        busy.push(echo_once(&mut socks[k % n], k).await?);
        k += 1;
    }
    let mut started = 0;
    for t in starters {
        if t.await?.is_ok() {
            started += 1;
        }
    }
    println!("keystroke echo while {starting} sessions start ({started} became ready; {})", summary(busy));

    // The flooding session, with flow control, as the page connects.
    let flood_token = token("flood".into())?;
    let flood_id = ready_session(&http, &base, &flood_token, "bench-big").await?;
    let mut fc = Client::connect(&base, &flood_id, &flood_token, Some(Some(WINDOW))).await?;
    fc.send(b"PS1='READY> '; echo up-$((40+2))\n").await?;
    fc.until(b"up-42", Duration::from_secs(30)).await?;

    // Throughput: cat of a file of `megabytes` MB (100-byte lines), measured at a client that keeps up: with flow
    // control (acknowledging as the page does) with the page's window and with the server's default one, and without
    // flow control, on a session of its own (without it the shim drops a client that falls 1 MiB behind).
    let t = token("cat-without-flow-control".into())?;
    let plain_id = ready_session(&http, &base, &t, "bench-big").await?;
    let mut plain = Client::connect(&base, &plain_id, &t, None).await?;
    let lines = megabytes * 10_000;
    let make = format!("yes 'examroom-throughput-line-of-one-hundred-bytes-0123456789012345678901234567890123456789012345' | head -n {lines} > /tmp/big; echo MADE-$((1+1))\n");
    for c in [&mut fc, &mut plain] {
        c.send(make.as_bytes()).await?;
        c.until(b"MADE-2", Duration::from_secs(120)).await?;
    }
    let (rate, bytes, secs) = cat_throughput(&mut fc).await?;
    println!(
        "throughput, cat of {megabytes} MB, flow control, the page's {} KiB window: {rate:.1} MB/s ({bytes} bytes in \
         {secs:.2} s)",
        WINDOW / 1024
    );
    drop(fc);
    let mut fast = Client::connect(&base, &flood_id, &flood_token, Some(None)).await?;
    fast.sync().await?;
    let (rate, bytes, secs) = cat_throughput(&mut fast).await?;
    println!(
        "throughput, cat of {megabytes} MB, flow control, the default {} KiB window: {rate:.1} MB/s ({bytes} bytes \
         in {secs:.2} s)",
        examroom_runtime::protocol::FLOW_WINDOW / 1024
    );
    drop(fast);
    let mut fc = Client::connect(&base, &flood_id, &flood_token, Some(Some(WINDOW))).await?;
    fc.sync().await?;
    match cat_throughput(&mut plain).await {
        Ok((rate, bytes, secs)) => {
            println!(
                "throughput, cat of {megabytes} MB, no flow control: {rate:.1} MB/s ({bytes} bytes in {secs:.2} s)"
            )
        }
        Err(e) => println!(
            "throughput, cat of {megabytes} MB, no flow control: the client was dropped after {} bytes ({e})",
            plain.received
        ),
    }
    drop(plain);
    match tokio::task::spawn_blocking(move || bare_pty(megabytes)).await? {
        Ok(rate) => {
            println!("throughput, cat of {megabytes} MB through a bare PTY on the host (the ceiling): {rate:.1} MB/s")
        }
        Err(e) => println!("throughput through a bare PTY: not measured ({e})"),
    }

    // Echo in the other sessions while one floods (its client keeps up and acknowledges): once the flood flows, for
    // at least 5 s.
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    fc.send(b"yes\n").await?;
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let flooded = std::sync::Arc::new(AtomicU64::new(0));
    let flooding = {
        let (stop, flooded) = (stop.clone(), flooded.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                flooded.fetch_add(fc.next(Duration::from_secs(30)).await?.len() as u64, Ordering::Relaxed);
                fc.ack().await?;
            }
            Ok::<_, anyhow::Error>(fc)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while flooded.load(Ordering::Relaxed) < 1_000_000 {
        if Instant::now() > deadline {
            bail!("the flood did not reach its client within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (mut echo_flood, t0, from) = (Vec::new(), Instant::now(), flooded.load(Ordering::Relaxed));
    let mut k = 0;
    while k < (sessions * 4).max(100) || t0.elapsed() < Duration::from_secs(5) {
        let n = socks.len();
        echo_flood.push(echo_once(&mut socks[k % n], k).await?);
        k += 1;
    }
    let bytes = flooded.load(Ordering::Relaxed) - from;
    let secs = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut fc = flooding.await??;
    println!(
        "keystroke echo while one session floods ({:.1} MB/s of yes to its client; {})",
        bytes as f64 / 1e6 / secs,
        summary(echo_flood)
    );
    fc.send(b"\x03").await?;
    fc.until(b"READY> ", Duration::from_secs(60)).await?;

    // Ctrl-C during a flood, until the prompt is rendered by a page that renders at `render_mbps`.
    let mut prompt = Vec::new();
    let mut after = Vec::new();
    for _ in 0..rounds {
        let (d, n) = ctrl_c_round(&mut fc, Duration::from_secs(2), render_mbps * 1e6).await?;
        prompt.push(d);
        after.push(n);
        // Quiet before the next round.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    after.sort();
    println!(
        "Ctrl-C after 2 s of yes → prompt rendered, page at {render_mbps} MB/s with flow control ({}); rendered \
         after the Ctrl-C: median {} KiB, max {} KiB",
        summary(prompt),
        after.get(after.len() / 2).copied().unwrap_or(0) / 1024,
        after.last().copied().unwrap_or(0) / 1024
    );
    drop((socks, fc));
    srv.stop().await
}
