//! The `system` profile: systemd as PID 1 in the environment's own user namespace, and a real machine's tools.

use std::time::Duration;

use examroom_runtime::{ExecOutput, ExecutionRuntime, Profile};

use crate::common::*;

fn show(o: &ExecOutput) -> String {
    format!("exit {:?} stdout {:?} stderr {:?}", o.exit_code, o.stdout_text(), String::from_utf8_lossy(&o.stderr))
}

/// Creates a `system` environment that has booted.
async fn booted(h: &Harness) -> examroom_core::EnvironmentId {
    h.create_spec(|s| s.profile = Profile::System).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_boots_and_a_shell_is_root_of_the_machine() {
    let h = Harness::new();
    let id = booted(&h).await;
    let out = h.sh_ok(&id, "systemctl --failed --no-legend | wc -l; cat /proc/1/comm; id -u; echo $container_uuid; cat /run/systemd/container").await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0", "failed units: {out}");
    assert_eq!(lines[1], "systemd");
    assert_eq!(lines[2], "0");
    assert_eq!(lines.last().copied(), Some("examroom"), "{out}");
    // The candidate's terminal is a login shell of root inside, started by entering the machine.
    let mut term = h.rt.attach(&id, "main").await.expect("attach");
    type_line(&mut term, "echo hello-$((6*7)) $(tty) $(cat /proc/self/cgroup | grep -c examroom)").await;
    let seen = expect_output(&mut term, "hello-42 /dev/pts/", Duration::from_secs(10)).await;
    assert!(!seen.contains("not a tty"), "{seen}");
    // Destroying ends the service manager and everything under it, promptly.
    let r = h.rt.destroy(&id).await.expect("destroy");
    assert!(r.verified && r.killed >= 3, "{r:?}");
    assert!(r.duration_ms < 10_000, "{r:?}");
    h.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_timers_journal_hostname_and_logins_work() {
    let h = Harness::new();
    let id = booted(&h).await;
    let out = h
        .sh(
            &id,
            r#"set -e
systemctl enable --now cron 2>&1
systemctl is-active cron
systemctl is-enabled cron
cat > /etc/systemd/system/hello.service <<'U'
[Unit]
Description=Hello
[Service]
ExecStart=/bin/sh -c 'echo hello-from-the-unit; sleep infinity'
[Install]
WantedBy=multi-user.target
U
systemctl daemon-reload
systemctl start hello
sleep 0.5
systemctl status hello --no-pager | grep -c 'active (running)'
journalctl -u hello --no-pager | grep -c hello-from-the-unit
systemd-run --quiet --on-active=1 --timer-property=AccuracySec=10ms --unit=tick touch /tmp/ticked
for i in $(seq 100); do [ -e /tmp/ticked ] && break; sleep 0.1; done
ls /tmp/ticked
hostnamectl set-hostname exam-host-one
hostname
loginctl list-sessions --no-legend >/dev/null && echo logind-ok
logger -t examtest logged-through-dev-log
sleep 0.5
journalctl -t examtest --no-pager | grep -c logged-through-dev-log
"#,
        )
        .await;
    let text = out.stdout_text();
    assert_eq!(out.exit_code, Some(0), "{}", show(&out));
    for want in ["active\nenabled\n", "/tmp/ticked\n", "exam-host-one\n", "logind-ok\n"] {
        assert!(text.contains(want), "{want:?} missing: {}", show(&out));
    }
    h.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sshd_runs_and_a_key_logs_alice_in() {
    let h = Harness::new();
    let id = booted(&h).await;
    let out = h
        .sh(
            &id,
            r#"set -e
useradd -m -s /bin/bash alice
systemctl start ssh
su - alice -c 'ssh-keygen -q -t ed25519 -N "" -f ~/.ssh/id_ed25519 && cp ~/.ssh/id_ed25519.pub ~/.ssh/authorized_keys'
su - alice -c 'ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new alice@localhost "id -un; hostname"'
ls /etc/ssh/ssh_host_*_key
"#,
        )
        .await;
    assert_eq!(out.exit_code, Some(0), "{}", show(&out));
    let text = out.stdout_text();
    assert!(text.starts_with("alice\nexam-"), "{}", show(&out));
    // Only an ed25519 host key is made.
    assert!(text.contains("/etc/ssh/ssh_host_ed25519_key\n") && !text.contains("rsa"), "{}", show(&out));
    h.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_has_networking_and_mounts_of_the_machines_own() {
    let h = Harness::new();
    let id = booted(&h).await;
    let out = h
        .sh(
            &id,
            r#"set -e
ip link add v0 type veth peer name v1
ip addr add 10.9.0.1/24 dev v0
ip link set v0 up; ip link set v1 up
ip -br addr show dev v0 | grep -c 10.9.0.1/24
ip link add br0 type bridge && echo bridge-ok
nft add table inet exam && nft list tables | grep -c exam
iptables -A INPUT -p tcp --dport 9 -j DROP && iptables -S INPUT | grep -c 'dport 9'
sysctl -w net.ipv4.ip_forward=1 >/dev/null && sysctl -n net.ipv4.ip_forward
ping -c1 -W2 10.9.0.1 >/dev/null && echo ping-ok
mkdir -p /mnt/t /mnt/b /srv/data /tmp/lo /tmp/up /tmp/wk /tmp/ov
mount -t tmpfs -o size=1m tmpfs /mnt/t && findmnt -n -o FSTYPE /mnt/t
mount --bind /etc /mnt/b && ls /mnt/b/hostname
echo x > /tmp/lo/f && mount -t overlay overlay -o lowerdir=/tmp/lo,upperdir=/tmp/up,workdir=/tmp/wk /tmp/ov && cat /tmp/ov/f
echo 'tmpfs /srv/data tmpfs size=2m 0 0' >> /etc/fstab
mount -a && findmnt -n -o FSTYPE /srv/data
"#,
        )
        .await;
    assert_eq!(out.exit_code, Some(0), "{}", show(&out));
    let text = out.stdout_text();
    for want in ["bridge-ok\n", "1\n1\n1\n", "ping-ok\n", "tmpfs\n/mnt/b/hostname\nx\ntmpfs\n"] {
        assert!(text.contains(want), "{want:?} missing: {}", show(&out));
    }
    // None of it reached the host.
    let host = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(!host.contains("/srv/data") && !host.contains("/mnt/t"), "a mount made inside shows on the host");
    let links = std::process::Command::new("ip").args(["-br", "link"]).output().expect("ip");
    assert!(!String::from_utf8_lossy(&links.stdout).contains("v0@"), "a link made inside shows on the host");
    h.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_user_namespace_cannot_give_is_refused_plainly() {
    let h = Harness::new();
    let id = booted(&h).await;
    for (what, script, needle) in [
        (
            "swapon",
            "fallocate -l 8M /swapf && chmod 600 /swapf && mkswap /swapf >/dev/null && swapon /swapf",
            "Operation not permitted",
        ),
        ("negative nice", "renice -n -5 -p $$", "Permission denied"),
        ("chattr +i", "touch /f && chattr +i /f", "Operation not permitted"),
        ("mknod of a device", "mknod /tmp/null2 c 1 3", "Operation not permitted"),
        ("raising a hard limit", "ulimit -Hn 1048576", "not permitted"),
        ("the clock", "date -s 2001-01-01", "Operation not permitted"),
        ("dmesg", "dmesg", "Operation not permitted"),
    ] {
        let out = h.sh(&id, &format!("{script} 2>&1")).await;
        assert_ne!(out.exit_code, Some(0), "{what} was allowed: {}", show(&out));
        assert!(out.stdout_text().contains(needle), "{what}: {}", show(&out));
    }
    h.teardown().await;
}

/// Root of a machine holds CAP_SYS_ADMIN, but only over the machine's own namespaces: what examroom masked or made
/// read-only stays so, and nothing it does reaches a neighbour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machines_root_stays_in_its_machine() {
    let h = Harness::new();
    let a = booted(&h).await;
    let b = booted(&h).await;
    let out = h
        .sh(
            &a,
            r#"mkdir -p /tmp/p /tmp/s
mount -t proc proc /tmp/p 2>&1 && { wc -c < /tmp/p/kallsyms; umount /tmp/p; } || echo proc-refused
mount -t sysfs sysfs /tmp/s 2>&1 && { ls /tmp/s/firmware | wc -l; umount /tmp/s; } || echo sysfs-refused
mount -o remount,rw /var/lib/dpkg 2>&1 || echo remount-refused
touch /var/lib/dpkg/x 2>&1 || echo dpkg-read-only
umount /proc/kcore 2>&1 || echo mask-locked
umount -l /proc/sys 2>/dev/null; cat /proc/sys/kernel/ostype
echo 1 > /sys/fs/cgroup/memory/memory.limit_in_bytes 2>&1 || echo limit-refused
echo 1 > /sys/fs/cgroup/pids/pids.max 2>&1 || echo pids-refused
ls /sys/fs/cgroup/memory | grep -c -- '-.*-.*-' || true
mkdir -p /mnt/inside && mount -t tmpfs inside-a /mnt/inside && echo mounted
systemd-run --quiet --unit=only-in-a sleep 300 && echo unit-started
"#,
        )
        .await;
    let text = out.stdout_text();
    for want in ["remount-refused", "dpkg-read-only", "mask-locked", "Linux", "limit-refused", "pids-refused", "mounted", "unit-started"] {
        assert!(text.contains(want), "{want} missing: {}", show(&out));
    }
    // A fresh proc or sysfs is refused while the masked ones are there; were it allowed, nothing masked would show.
    assert!(text.contains("proc-refused") || text.contains("\n0\n"), "a fresh /proc shows kallsyms: {}", show(&out));
    assert!(text.contains("sysfs-refused") || !text.contains("efi"), "{}", show(&out));
    // The machine's cgroup tree is its own: no other environment's group shows.
    let groups: u32 = text.lines().rev().nth(2).and_then(|l| l.trim().parse().ok()).unwrap_or(99);
    assert_eq!(groups, 0, "another environment's group shows: {}", show(&out));
    // The neighbour sees none of it.
    let nb = h.sh_ok(&b, "systemctl list-units --all --no-legend | grep -c only-in-a || true; grep -c inside-a /proc/self/mountinfo || true").await;
    assert_eq!(nb, "0\n0\n", "the neighbour sees A's unit or mount");
    h.teardown().await;
}

/// A machine is graded booted again from its disk: what the candidate enabled runs, what they only started or left
/// running does not, their files and hostname are there, and the checks (trusted tools, as always) ask the machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grading_boots_the_machine_again_from_its_disk() {
    let h = Harness::new();
    let id = booted(&h).await;
    h.sh_ok(
        &id,
        r#"set -e
systemctl enable --now cron >/dev/null 2>&1
systemd-run --quiet --unit=only-started sleep 3000
setsid sleep 4242 >/dev/null 2>&1 < /dev/null &
hostnamectl set-hostname graded-host
echo work > /root/answer.txt
cat > /etc/systemd/system/web.service <<'U'
[Unit]
Description=A web server of the candidate's
[Service]
ExecStart=/usr/bin/python3 -m http.server 8080 --bind 127.0.0.1 --directory /root
[Install]
WantedBy=multi-user.target
U
systemctl enable web >/dev/null 2>&1
"#,
    )
    .await;
    let t0 = std::time::Instant::now();
    h.rt.freeze(&id).await.expect("boot again for grading");
    let boot = t0.elapsed();
    let check = |script: &str| examroom_runtime::ExecRequest::shell(script);
    let out = h
        .rt
        .exec_trusted(
            &id,
            check(
                "systemctl is-active cron; systemctl is-active only-started; systemctl is-active web; hostname; \
                 cat /root/answer.txt; ps -eo args | grep -c '^sleep 4242' || true; \
                 for i in $(seq 50); do curl -sf http://127.0.0.1:8080/answer.txt && break; sleep 0.1; done",
            ),
        )
        .await
        .expect("check");
    assert_eq!(
        out.stdout_text(),
        "active\ninactive\nactive\ngraded-host\nwork\n0\nwork\n",
        "{} (booted again in {boot:?})",
        show(&out)
    );
    // Booting again is done once; a second freeze (grading again) keeps the graded machine.
    h.rt.freeze(&id).await.expect("again");
    let again = h.rt.exec_trusted(&id, check("systemctl is-active web")).await.expect("check");
    assert_eq!(again.stdout_text(), "active\n", "{}", show(&again));
    eprintln!("booted again for grading in {boot:?}");
    h.teardown().await;
}
