//! `examroom bench desktop`: what a desktop costs and how it answers, on the sandbox runtime.
//!
//! - **Readiness added**: the time `start_desktop` takes (the X server and VNC server up, the VNC greeting read
//!   through the shim), after an environment is made, which is what a desktop exam's provisioning adds.
//! - **Memory per idle desktop session**: `MemAvailable` before and after making N environments with a desktop and
//!   letting them idle, divided by N (and the same for N environments without one, for comparison).
//! - **Input to frame**: a real RFB client over `Dial` (the path the server's WebSocket relays) sends a key to the
//!   desktop's terminal and times the first framebuffer update that follows; p50 and p99 over many keys.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use examroom_core::EnvironmentId;
use examroom_runtime::sandbox::{SandboxConfig, SandboxRuntime};
use examroom_runtime::{DesktopSpec, EnvironmentSpec, ExecutionRuntime, PortStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::bench::percentile;

/// What to measure.
pub struct Params {
    /// Desktops started one after another for the readiness figure.
    pub count: usize,
    /// Idle sessions for the memory figure (0 skips it).
    pub idle: usize,
    /// Keys typed for the latency figure.
    pub keys: usize,
}

const SPEC: DesktopSpec = DesktopSpec { width: 1280, height: 800, port: 5900 };

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

pub async fn run(p: Params) -> Result<()> {
    let tmp = tempfile::Builder::new().prefix("examroom-bench-").tempdir_in("/tmp")?;
    let label = format!("bench-{}", std::process::id());
    let rt = SandboxRuntime::new(SandboxConfig::new(tmp.path(), &label))?;
    println!(
        "examroom bench desktop --count {} --idle {} --keys {} ({}x{}, TigerVNC Xvnc + openbox + xterm)",
        p.count, p.idle, p.keys, SPEC.width, SPEC.height
    );
    let result = measure(&rt, &p).await;
    // Nothing stays behind, whatever happened.
    for env in rt.list().await.unwrap_or_default() {
        if let Err(e) = rt.destroy(&env.id).await {
            eprintln!("examroom bench: destroying {}: {e}", env.id);
        }
    }
    result
}

async fn create(rt: &SandboxRuntime) -> Result<EnvironmentId> {
    let id = EnvironmentId::new_v4();
    let mut spec = EnvironmentSpec::new(id);
    spec.limits.memory_bytes = 768 << 20;
    rt.create(spec).await?;
    Ok(id)
}

async fn measure(rt: &SandboxRuntime, p: &Params) -> Result<()> {
    // Readiness added by the desktop.
    let mut creates = Vec::new();
    let mut starts = Vec::new();
    for _ in 0..p.count.max(1) {
        let t0 = Instant::now();
        let id = create(rt).await?;
        creates.push(t0.elapsed());
        let t1 = Instant::now();
        rt.start_desktop(&id, SPEC).await?;
        starts.push(t1.elapsed());
        rt.destroy(&id).await?;
    }
    creates.sort();
    starts.sort();
    println!(
        "readiness: environment made p50 {}; the desktop adds p50 {}, p99 {}, max {} (n={})",
        ms(percentile(&creates, 50.0)),
        ms(percentile(&starts, 50.0)),
        ms(percentile(&starts, 99.0)),
        ms(*starts.last().unwrap_or(&Duration::ZERO)),
        starts.len()
    );

    // Memory per idle session, with and without a desktop.
    if p.idle > 0 {
        for desktop in [false, true] {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let before = crate::bench::mem_available_kib()?;
            let mut ids = Vec::new();
            for _ in 0..p.idle {
                let id = create(rt).await?;
                if desktop {
                    rt.start_desktop(&id, SPEC).await?;
                }
                ids.push(id);
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
            let after = crate::bench::mem_available_kib()?;
            let per = before.saturating_sub(after) as f64 / 1024.0 / p.idle as f64;
            println!(
                "memory: {} idle sessions {} a desktop: MemAvailable down {:.1} MiB each",
                p.idle,
                if desktop { "with" } else { "without" },
                per
            );
            for id in ids {
                rt.destroy(&id).await?;
            }
        }
    }

    // Input to frame.
    let id = create(rt).await?;
    rt.start_desktop(&id, SPEC).await?;
    // The session's terminal window opens (and takes the focus) shortly after the X server.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stream = rt.dial(&id, SPEC.port).await?;
    let mut vnc = Rfb::connect(stream).await?;
    let mut lat = Vec::new();
    for i in 0..p.keys.max(1) {
        // Anything still on its way is taken first, so that the next update is the key's.
        vnc.request(true).await?;
        while vnc.update_within(Duration::from_millis(50)).await? {
            vnc.request(true).await?;
        }
        let key = if i % 2 == 0 { 0x61 } else { 0xff08 }; // 'a', then BackSpace
        let t0 = Instant::now();
        vnc.key(key).await?;
        if !vnc.update_within(Duration::from_secs(5)).await? {
            bail!("no frame within 5 s of a key");
        }
        lat.push(t0.elapsed());
    }
    lat.sort();
    println!(
        "input to frame (RFB over Dial, loopback): p50 {}, p99 {}, max {} (n={})",
        ms(percentile(&lat, 50.0)),
        ms(percentile(&lat, 99.0)),
        ms(*lat.last().unwrap_or(&Duration::ZERO)),
        lat.len()
    );
    Ok(())
}

/// A minimal RFB 3.8 client: no security, raw encoding, 32 bits per pixel.
struct Rfb {
    s: PortStream,
    width: u16,
    height: u16,
    bpp: usize,
}

impl Rfb {
    async fn connect(mut s: PortStream) -> Result<Rfb> {
        let mut version = [0u8; 12];
        s.read_exact(&mut version).await?;
        if !version.starts_with(b"RFB ") {
            bail!("not a VNC server: {:?}", String::from_utf8_lossy(&version));
        }
        s.write_all(b"RFB 003.008\n").await?;
        let n = s.read_u8().await? as usize;
        let mut types = vec![0u8; n];
        s.read_exact(&mut types).await?;
        if !types.contains(&1) {
            bail!("the VNC server offers no security type None: {types:?}");
        }
        s.write_all(&[1]).await?;
        if s.read_u32().await? != 0 {
            bail!("security handshake failed");
        }
        s.write_all(&[1]).await?; // shared
        let width = s.read_u16().await?;
        let height = s.read_u16().await?;
        let mut format = [0u8; 16];
        s.read_exact(&mut format).await?;
        let name_len = s.read_u32().await? as usize;
        let mut name = vec![0u8; name_len.min(1 << 16)];
        s.read_exact(&mut name).await?;
        let bpp = (format[0] as usize / 8).max(1);
        // Raw encoding only.
        s.write_all(&[2, 0, 0, 1, 0, 0, 0, 0]).await?;
        let mut rfb = Rfb { s, width, height, bpp };
        rfb.request(false).await?;
        rfb.update_within(Duration::from_secs(10)).await?.then_some(()).context("no first frame")?;
        Ok(rfb)
    }

    async fn request(&mut self, incremental: bool) -> Result<()> {
        let (w, h) = (self.width.to_be_bytes(), self.height.to_be_bytes());
        self.s.write_all(&[3, u8::from(incremental), 0, 0, 0, 0, w[0], w[1], h[0], h[1]]).await?;
        Ok(())
    }

    async fn key(&mut self, keysym: u32) -> Result<()> {
        let k = keysym.to_be_bytes();
        self.s.write_all(&[4, 1, 0, 0, k[0], k[1], k[2], k[3], 4, 0, 0, 0, k[0], k[1], k[2], k[3]]).await?;
        Ok(())
    }

    /// Reads server messages until a framebuffer update has been read whole (true), or `within` passes (false).
    async fn update_within(&mut self, within: Duration) -> Result<bool> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let kind = match tokio::time::timeout_at(deadline, self.s.read_u8()).await {
                Err(_) => return Ok(false),
                Ok(k) => k?,
            };
            match kind {
                0 => {
                    self.s.read_u8().await?;
                    let rects = self.s.read_u16().await?;
                    for _ in 0..rects {
                        let mut head = [0u8; 12];
                        self.s.read_exact(&mut head).await?;
                        let (w, h) = (u16::from_be_bytes([head[4], head[5]]), u16::from_be_bytes([head[6], head[7]]));
                        let encoding = i32::from_be_bytes([head[8], head[9], head[10], head[11]]);
                        if encoding != 0 {
                            bail!("unexpected encoding {encoding}");
                        }
                        let mut left = w as usize * h as usize * self.bpp;
                        let mut buf = vec![0u8; 64 * 1024];
                        while left > 0 {
                            let n = left.min(buf.len());
                            self.s.read_exact(&mut buf[..n]).await?;
                            left -= n;
                        }
                    }
                    return Ok(true);
                }
                2 => {} // bell
                3 => {
                    let mut pad = [0u8; 3];
                    self.s.read_exact(&mut pad).await?;
                    let len = self.s.read_u32().await? as usize;
                    let mut text = vec![0u8; len.min(1 << 20)];
                    self.s.read_exact(&mut text).await?;
                }
                other => bail!("unexpected server message {other}"),
            }
        }
    }
}
