//! The Docker Engine the Docker tests run against: one `dockerd` for every test run on this machine, started here
//! when its socket does not answer, and left running (it keeps the images the tests imported). Nothing is pulled:
//! the test images are made from local files ([`busybox_image`]).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Where the test daemon keeps its state, its socket and its pid file.
pub const RUN_DIR: &str = "/run/examroom-test-docker";
/// Its data root (images, containers).
pub const DATA_ROOT: &str = "/var/lib/examroom-test-docker/data";
/// The tag of the busybox image the tests run.
pub const BUSYBOX: &str = "examroom-test/busybox:1";

/// The daemon's socket path.
pub fn socket_path() -> PathBuf {
    Path::new(RUN_DIR).join("docker.sock")
}

/// `true` when the daemon at `sock` answers `GET /_ping`.
fn answers(sock: &Path) -> bool {
    let Ok(mut s) = UnixStream::connect(sock) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    buf.starts_with(b"HTTP/1.0 200") || buf.starts_with(b"HTTP/1.1 200")
}

/// The socket of a running test daemon; starts it (bounded: 60 s) when it does not answer.
pub fn socket() -> PathBuf {
    static STARTED: OnceLock<PathBuf> = OnceLock::new();
    STARTED
        .get_or_init(|| {
            let sock = socket_path();
            if answers(&sock) {
                return sock;
            }
            std::fs::create_dir_all(RUN_DIR).expect("run dir");
            std::fs::create_dir_all(DATA_ROOT).expect("data root");
            let _ = std::fs::remove_file(&sock);
            let log = std::fs::File::create(Path::new(RUN_DIR).join("dockerd.log")).expect("dockerd log");
            let mut cmd = Command::new("dockerd");
            // Every session has a network of its own: Docker's default address pools hold about 30 bridge networks,
            // so the tests' Engine gets 4096 small ones (docs/DEPLOY.md says the same to operators).
            cmd.args(["--data-root", DATA_ROOT])
                .args(["--default-address-pool", "base=10.213.0.0/16,size=28"])
                .args(["--exec-root", &format!("{RUN_DIR}/exec")])
                .args(["--pidfile", &format!("{RUN_DIR}/dockerd.pid")])
                .arg("-H")
                .arg(format!("unix://{}", sock.display()))
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log);
            // Its own session: it outlives this test process.
            unsafe {
                use std::os::unix::process::CommandExt;
                cmd.pre_exec(|| {
                    libc::setsid();
                    Ok(())
                });
            }
            cmd.spawn().expect("dockerd could not start: install Debian's docker.io (scripts/install-deps.sh)");
            let until = Instant::now() + Duration::from_secs(60);
            while !answers(&sock) {
                assert!(
                    Instant::now() < until,
                    "dockerd did not answer on {} within 60 s; see {RUN_DIR}/dockerd.log",
                    sock.display()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            sock
        })
        .clone()
}

/// Runs the docker CLI against the test daemon; panics with its output when it fails.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .arg("-H")
        .arg(format!("unix://{}", socket().display()))
        .args(args)
        .output()
        .expect("the docker CLI (Debian's docker.io)");
    assert!(
        out.status.success(),
        "docker {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A tiny image with busybox's shell and tools (Debian's static busybox and its applet links), imported once.
pub fn busybox_image() -> &'static str {
    static IMPORTED: OnceLock<()> = OnceLock::new();
    IMPORTED.get_or_init(|| {
        let listed = Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", socket().display()))
            .args(["image", "inspect", BUSYBOX])
            .output()
            .expect("docker CLI");
        if listed.status.success() {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("rootfs");
        for d in ["bin", "sbin", "etc", "root", "tmp", "proc", "sys", "dev", "usr/bin", "usr/sbin", "var/tmp"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("busybox-static is installed");
        let list = Command::new("/bin/busybox").arg("--list-full").output().expect("busybox --list-full");
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            let link = root.join(applet);
            if applet == "bin/busybox" || link.exists() {
                continue;
            }
            let _ = std::os::unix::fs::symlink("/bin/busybox", &link);
        }
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        )
        .unwrap();
        std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
        let tar = dir.path().join("rootfs.tar");
        let st = Command::new("tar").arg("-C").arg(&root).arg("-cf").arg(&tar).arg(".").status().unwrap();
        assert!(st.success(), "tar of the busybox rootfs");
        docker(&["import", "--change", "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin", tar.to_str().unwrap(), BUSYBOX]);
    });
    BUSYBOX
}
