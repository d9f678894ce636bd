//! The writable layer's bound where the Engine supports it: a dockerd of this test's own whose data root is an XFS
//! filesystem (a loop device) mounted with project quotas. Started and stopped by the test, with no bridge and no
//! iptables rules of its own, so it never meets the shared test daemon's networks.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use examroom_core::EnvironmentId;
use examroom_runtime::docker::{DiskBound, DockerConfig, DockerRuntime};
use examroom_runtime::{EnvironmentSpec, ExecRequest, ExecutionRuntime, Limits};

use crate::harness::{label, shim};

/// The XFS image, its mount, and the daemon; all removed on drop.
struct XfsEngine {
    dir: PathBuf,
    mount: PathBuf,
    dockerd: Option<Child>,
}

impl XfsEngine {
    fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker").arg("-H").arg(format!("unix://{}", self.socket().display())).args(args).output().unwrap()
    }

    /// With or without project quotas; `None` (printed) when this machine cannot make one.
    fn start(pquota: bool) -> Option<XfsEngine> {
        let tag = format!("{}-{}", std::process::id(), if pquota { "pquota" } else { "plain" });
        let dir = PathBuf::from(format!("/run/examroom-test-docker-xfs-{tag}"));
        let image = PathBuf::from(format!("/var/lib/examroom-test-docker/xfs-{tag}.img"));
        let mount = dir.join("data");
        std::fs::create_dir_all(&mount).unwrap();
        let run = |c: &mut Command| match c.output() {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_string()),
            Err(e) => Err(e.to_string()),
        };
        let made = run(Command::new("truncate").arg("-s").arg("1G").arg(&image))
            .and_then(|_| run(Command::new("mkfs.xfs").arg("-q").arg(&image)))
            .and_then(|_| {
                let options = if pquota { "loop,pquota" } else { "loop" };
                run(Command::new("mount").args(["-o", options]).arg(&image).arg(&mount))
            });
        if let Err(why) = made {
            let _ = std::fs::remove_file(&image);
            let _ = std::fs::remove_dir_all(&dir);
            eprintln!(
                "skipped: cannot mount an XFS filesystem (project quotas: {pquota}) here ({why}); kernels without \
                 CONFIG_XFS_QUOTA cannot mount one with project quotas"
            );
            return None;
        }
        // The mount keeps the loop device; the file can go now.
        let _ = std::fs::remove_file(&image);
        let mut engine = XfsEngine { dir: dir.clone(), mount: mount.clone(), dockerd: None };
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .arg("--data-root")
            .arg(&mount)
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", engine.socket().display()))
            .args(["--bridge=none", "--iptables=false", "--ip-masq=false", "--ip-forward=false"])
            .args([
                "--default-address-pool",
                if pquota { "base=10.231.0.0/16,size=24" } else { "base=10.232.0.0/16,size=24" },
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("dockerd");
        engine.dockerd = Some(child);
        let until = Instant::now() + Duration::from_secs(60);
        while !engine.cli(&["version"]).status.success() {
            assert!(Instant::now() < until, "the XFS dockerd did not answer; see {}/dockerd.log", dir.display());
            std::thread::sleep(Duration::from_millis(200));
        }
        // The busybox image, from the shared daemon's store.
        let saved = dir.join("busybox.tar");
        crate::dockerd::docker(&["save", "-o", saved.to_str().unwrap(), crate::dockerd::busybox_image()]);
        let load = engine.cli(&["load", "-i", saved.to_str().unwrap()]);
        assert!(load.status.success(), "{}", String::from_utf8_lossy(&load.stderr));
        Some(engine)
    }
}

impl Drop for XfsEngine {
    fn drop(&mut self) {
        let ids = self.cli(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.cli(&["rm", "-f", "-v", id]);
        }
        if let Some(mut child) = self.dockerd.take() {
            // SAFETY: signalling our own child, not yet reaped.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let until = Instant::now() + Duration::from_secs(20);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn on_xfs_with_project_quotas_the_writable_layer_is_bounded() {
    let Some(shim) = shim() else { return };
    let Some(engine) = XfsEngine::start(true) else { return };
    // Unbounded disks are not accepted: this Engine must bound them.
    let rt = DockerRuntime::new(DockerConfig::new(engine.socket(), &label(), shim)).unwrap();
    assert_eq!(rt.disk_bound().await.unwrap(), DiskBound::Bounded);
    let mut spec = EnvironmentSpec::new(EnvironmentId::new_v4());
    spec.image = Some(crate::dockerd::BUSYBOX.to_string());
    spec.limits = Limits { memory_bytes: 512 << 20, pids: 128, cpu_millicores: 500, disk_bytes: 64 << 20 };
    let id = spec.id;
    rt.create(spec).await.expect("create on XFS");
    let size = engine.cli(&["inspect", "-f", "{{json .HostConfig.StorageOpt}}", &format!("examroom-{id}")]);
    assert!(String::from_utf8_lossy(&size.stdout).contains(&(64u64 << 20).to_string()), "{size:?}");
    let out = rt
        .exec(&id, ExecRequest::shell("dd if=/dev/zero of=/fill bs=1M count=200 2>&1; echo rc=$?; df -k / | tail -1"))
        .await
        .unwrap();
    let text = out.stdout_text();
    assert!(text.contains("No space left") && !text.contains("rc=0"), "{text}");
    assert!(rt.destroy(&id).await.unwrap().verified);
}

/// XFS without project quotas cannot bound a disk: said by `disk_bound` (for /readyz) and refused at create, before
/// anything is made.
#[tokio::test(flavor = "multi_thread")]
async fn on_xfs_without_project_quotas_the_disk_is_unbounded_and_refused() {
    let Some(engine) = XfsEngine::start(false) else { return };
    let rt = DockerRuntime::new(DockerConfig::new(engine.socket(), &label(), "/bin/busybox")).unwrap();
    match rt.disk_bound().await.unwrap() {
        DiskBound::Unbounded(why) => assert!(why.contains("without project quotas") && why.contains("pquota"), "{why}"),
        DiskBound::Bounded => panic!("XFS without pquota reported as bounded"),
    }
    let mut spec = EnvironmentSpec::new(EnvironmentId::new_v4());
    spec.image = Some(crate::dockerd::BUSYBOX.to_string());
    let e = rt.create(spec).await.unwrap_err().to_string();
    assert!(e.contains("pquota") && e.contains("accept unbounded disks"), "{e}");
    let left = engine.cli(&["ps", "-aq"]);
    assert!(left.stdout.is_empty(), "{left:?}");
    let networks = engine.cli(&["network", "ls", "-q", "--filter", "label=examroom.environment"]);
    assert!(networks.stdout.is_empty(), "{networks:?}");
}
