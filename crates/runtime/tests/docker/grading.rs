//! Grading containers: a check sees the candidate's files as read-only, noexec data and runs the pristine image's
//! tools, whatever the candidate replaced.

use std::sync::OnceLock;
use std::time::Duration;

use bollard::query_parameters::{TopOptions, TopOptionsBuilder};
use examroom_core::EnvironmentId;
use examroom_runtime::docker::testing::{exec_trusted, remove_grading};
use examroom_runtime::{ExecRequest, RuntimeError};

use crate::{dockerd, Run};

/// The busybox image with a pristine `/etc/nsswitch.conf` and `/etc/profile` (committed once, kept like busybox).
fn nss_image() -> &'static str {
    const TAG: &str = "examroom-test/busybox-nss:1";
    static MADE: OnceLock<()> = OnceLock::new();
    MADE.get_or_init(|| {
        if crate::cli(&["image", "inspect", "--format", "{{.Id}}", TAG]).trim().is_empty() {
            let name = format!("examroom-test-nss-build-{}", std::process::id());
            dockerd::docker(&[
                "run",
                "--name",
                &name,
                "--network",
                "none",
                dockerd::busybox_image(),
                "sh",
                "-c",
                "echo 'passwd: files # pristine' > /etc/nsswitch.conf && echo 'echo pristine-profile' > /etc/profile",
            ]);
            dockerd::docker(&["commit", &name, TAG]);
            dockerd::docker(&["rm", "-f", &name]);
        }
    });
    TAG
}

async fn check(run: &Run, env: &EnvironmentId, script: &str) -> examroom_runtime::ExecOutput {
    exec_trusted(&run.docker, &run.label, env, ExecRequest::shell(script)).await.expect("the check runs")
}

async fn pause(run: &Run, name: &str) {
    run.docker.pause_container(name).await.expect("pause the candidate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_sees_the_candidates_files_read_only_and_cannot_run_them_and_remove_leaves_nothing() {
    let run = Run::new("grading-files");
    let env = EnvironmentId::new_v4();
    let cand = run.candidate(&env, dockerd::busybox_image(), None).await;
    let (code, out) = run
        .sh(
            &cand,
            "set -e; mkdir -p /home/alice /data /etc/myapp; echo 42 > /root/answer.txt; echo hello > /home/alice/notes; \
             echo d > /data/x; echo top > /top.txt; echo conf > /etc/myapp/app.conf; \
             echo 'alice:x:1000:1000::/home/alice:/bin/sh' >> /etc/passwd; rm /etc/group; \
             cp /bin/busybox /root/bb; chmod 755 /root/bb; cp /bin/busybox /etc/myapp/bb; chmod 755 /etc/myapp/bb",
        )
        .await;
    assert_eq!(code, 0, "{out}");
    pause(&run, &cand).await;

    let seen = check(
        &run,
        &env,
        "cat /root/answer.txt /home/alice/notes /data/x /top.txt /etc/myapp/app.conf; grep -c alice /etc/passwd; \
         id -u alice; test -e /etc/group || echo no-group; cat /candidate/root/answer.txt",
    )
    .await;
    assert_eq!(seen.exit_code, Some(0), "{seen:?}");
    assert_eq!(seen.stdout_text(), "42\nhello\nd\ntop\nconf\n1\n1000\nno-group\n42\n", "{:?}", seen.stderr);

    // Nothing of theirs can be written, at its place or under /candidate.
    for w in [
        "echo changed > /root/answer.txt",
        "touch /root/new",
        "rm /home/alice/notes",
        "touch /candidate/root/new",
        "echo x >> /etc/passwd",
        "touch /etc/myapp/new",
        "echo x > /data/x",
    ] {
        let out = check(&run, &env, w).await;
        assert_ne!(out.exit_code, Some(0), "{w} succeeded: {out:?}");
    }
    // And no program of theirs in a directory runs: every directory of theirs is noexec.
    for x in [
        "/root/bb echo ran",
        "/candidate/root/bb echo ran",
        "/etc/myapp/bb echo ran",
        "/candidate/bin/busybox echo ran",
    ] {
        let out = check(&run, &env, x).await;
        assert_ne!(out.exit_code, Some(0), "{x} ran: {out:?}");
        assert!(!out.stdout_text().contains("ran"), "{x} ran: {out:?}");
    }
    let mounts = check(&run, &env, "grep -E ' /(root|home|candidate|etc/myapp) ' /proc/self/mountinfo").await;
    for line in mounts.stdout_text().lines() {
        let opts = line.split(' ').nth(5).unwrap_or("");
        for flag in ["ro", "nosuid", "nodev", "noexec"] {
            assert!(opts.split(',').any(|o| o == flag), "{flag} missing: {line}");
        }
    }
    assert_eq!(mounts.stdout_text().lines().count(), 4, "{mounts:?}");

    assert!(!run.objects(&env, "grading").is_empty());
    remove_grading(&run.docker, &env).await.expect("remove");
    assert_eq!(run.objects(&env, "grading"), Vec::<String>::new(), "grading left something");
    // The candidate's files are as they were, and the candidate is untouched.
    run.docker.unpause_container(&cand).await.unwrap();
    let (code, out) =
        run.sh(&cand, "cat /root/answer.txt /home/alice/notes; ls /root; test -x /root/bb && echo x").await;
    assert_eq!((code, out.as_str()), (0, "42\nhello\nanswer.txt\nbb\nx\n"));
    // Removing again is fine.
    remove_grading(&run.docker, &env).await.expect("remove again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checks_tools_are_the_pristine_images_whatever_the_candidate_replaced() {
    let run = Run::new("grading-tools");
    let env = EnvironmentId::new_v4();
    let cand = run.candidate(&env, dockerd::busybox_image(), None).await;
    let (code, out) = run
        .sh(
            &cand,
            "set -e; echo real > /root/f; mkdir -p /usr/local/bin; \
             for t in cat sh grep; do printf '#!/bin/busybox sh\\necho FAKE\\n' > /usr/local/bin/$t; chmod 755 /usr/local/bin/$t; done; \
             printf '#!/nonexistent\\nFAKE-BUSYBOX\\n' > /root/fake; chmod 755 /root/fake; mv /root/fake /bin/busybox",
        )
        .await;
    assert_eq!(code, 0, "{out}");
    // The candidate's own shell is now broken: /bin/sh is their file.
    let (code, _) = run.sh(&cand, "echo alive").await;
    assert_ne!(code, 0, "the candidate's /bin/busybox was not replaced");
    pause(&run, &cand).await;

    let out = check(
        &run,
        &env,
        "cat /root/f; sh -c 'echo shell-ok'; grep -c FAKE-BUSYBOX /candidate/bin/busybox; echo $PATH",
    )
    .await;
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    assert_eq!(
        out.stdout_text(),
        "real\nshell-ok\n1\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A variable of the request cannot bring their programs back.
    let mut req = ExecRequest::shell("cat /root/f");
    req.env =
        vec![("PATH".into(), "/candidate/usr/local/bin:/root".into()), ("LD_PRELOAD".into(), "/root/x.so".into())];
    let out = exec_trusted(&run.docker, &run.label, &env, req).await.unwrap();
    assert_eq!((out.exit_code, out.stdout_text().as_str()), (Some(0), "real\n"), "{out:?}");
}

/// Busybox is static and reads `/etc/passwd` itself (it never loads NSS modules), so a `/x` module in the candidate's
/// `nsswitch.conf` could not run here anyway; what applies is that the check's `/etc/nsswitch.conf`, `ld.so.preload`
/// and `profile` are the pristine image's (or absent with it), while their data files are theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_candidates_nsswitch_and_loader_configuration_are_not_used() {
    let run = Run::new("grading-etc");
    let env = EnvironmentId::new_v4();
    let cand = run.candidate(&env, nss_image(), None).await;
    let (code, out) = run
        .sh(
            &cand,
            "set -e; printf 'passwd: x\\ngroup: x\\nhosts: x\\n' > /etc/nsswitch.conf; echo /root/evil.so > /etc/ld.so.preload; \
             echo 'echo candidate-profile' > /etc/profile; echo 'bob:x:1001:1001::/root:/bin/sh' >> /etc/passwd; \
             ln -s /root /etc/escape; echo '10.9.8.7 db.internal' >> /etc/hosts",
        )
        .await;
    assert_eq!(code, 0, "{out}");
    pause(&run, &cand).await;
    let out = check(
        &run,
        &env,
        "cat /etc/nsswitch.conf; test -e /etc/ld.so.preload || echo no-preload; cat /etc/profile; id -u bob; \
         grep -c 'passwd: x' /candidate/etc/nsswitch.conf; readlink /etc/escape; grep -c db.internal /etc/hosts",
    )
    .await;
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    assert_eq!(
        out.stdout_text(),
        "passwd: files # pristine\nno-preload\necho pristine-profile\n1001\n1\n/root\n1\n",
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_is_refused_while_the_candidate_runs() {
    let run = Run::new("grading-unfrozen");
    let env = EnvironmentId::new_v4();
    run.candidate(&env, dockerd::busybox_image(), None).await;
    let err = exec_trusted(&run.docker, &run.label, &env, ExecRequest::shell("true")).await.unwrap_err();
    assert!(matches!(err, RuntimeError::Unsupported(_)), "{err}");
    assert!(err.to_string().contains("freeze"), "{err}");
    assert_eq!(run.objects(&env, "grading"), Vec::<String>::new());
    let missing = EnvironmentId::new_v4();
    let err = exec_trusted(&run.docker, &run.label, &missing, ExecRequest::shell("true")).await.unwrap_err();
    assert!(matches!(err, RuntimeError::NotFound), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_is_killed_at_its_timeout_its_output_capped_and_it_gets_stdin_cwd_and_exit_code() {
    let run = Run::new("grading-exec");
    let env = EnvironmentId::new_v4();
    let cand = run.candidate(&env, dockerd::busybox_image(), None).await;
    pause(&run, &cand).await;

    let req = ExecRequest::shell("echo started; sleep 60 & sleep 60").with_timeout(Duration::from_secs(2));
    let out = exec_trusted(&run.docker, &run.label, &env, req).await.unwrap();
    assert!(out.timed_out, "{out:?}");
    assert_eq!((out.exit_code, out.signal), (None, Some(9)));
    assert_eq!(out.stdout_text(), "started\n");
    assert!(out.duration < Duration::from_secs(12), "{:?}", out.duration);
    // Nothing of it is left: the grading container holds its own sleep only.
    let opts = TopOptionsBuilder::default().ps_args("-o pid,args").build();
    let top = run.docker.top_processes(&format!("examroom-{env}-grading"), Some(opts)).await.unwrap();
    let procs = top.processes.unwrap_or_default();
    assert_eq!(procs.len(), 1, "{procs:?}");

    let mut req = ExecRequest::shell("yes | head -c 100000; yes e | head -c 10 >&2");
    req.output_limit = 1000;
    let out = exec_trusted(&run.docker, &run.label, &env, req).await.unwrap();
    assert_eq!((out.exit_code, out.stdout.len(), out.truncated), (Some(0), 1000, true));
    assert_eq!(out.stderr, b"e\ne\ne\ne\ne\n");

    let req = ExecRequest {
        argv: vec!["/bin/sh".into()],
        env: vec![("GREETING".into(), "hi".into())],
        cwd: "/root".into(),
        stdin: b"echo $GREETING from-stdin; pwd; exit 3\n".to_vec(),
        timeout: Duration::from_secs(20),
        output_limit: 1 << 20,
    };
    let out = exec_trusted(&run.docker, &run.label, &env, req.clone()).await.unwrap();
    assert_eq!((out.exit_code, out.stdout_text().as_str(), out.truncated), (Some(3), "hi from-stdin\n/root\n", false));
    let out =
        exec_trusted(&run.docker, &run.label, &env, ExecRequest { cwd: "/nonexistent".into(), ..req }).await.unwrap();
    assert_eq!(out.stdout_text(), "hi from-stdin\n/\n", "{out:?}");

    // Unfrozen, the candidate makes a new top-level directory and a new /etc entry; frozen again, a check sees them
    // (the grading container is made again for what their tree holds now).
    run.docker.unpause_container(&cand).await.unwrap();
    let (code, out) = run.sh(&cand, "mkdir /late && echo late > /late/f && echo v > /etc/late.conf").await;
    assert_eq!(code, 0, "{out}");
    pause(&run, &cand).await;
    let out = check(&run, &env, "cat /late/f /etc/late.conf").await;
    assert_eq!(out.stdout_text(), "late\nv\n", "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_sees_the_candidates_listening_sockets_and_processes() {
    let run = Run::new("grading-ns");
    let env = EnvironmentId::new_v4();
    let cand = run.candidate(&env, dockerd::busybox_image(), None).await;
    let (code, out) =
        run.sh(&cand, "nc -l -p 8080 >/dev/null 2>&1 </dev/null & sleep 0.5; netstat -tln | grep -c :8080").await;
    assert_eq!((code, out.as_str()), (0, "1\n"));
    pause(&run, &cand).await;
    // Their listener is frozen, but the kernel completes a connection to it; the check's own nc is killed after it.
    let out = check(
        &run,
        &env,
        "netstat -tln | grep -c :8080; ps -o args | grep -c '^nc -l -p 8080'; \
         sleep 30 | nc 127.0.0.1 8080 >/dev/null 2>&1 & sleep 1; netstat -tn | grep -c '127.0.0.1:8080 *ESTABLISHED'",
    )
    .await;
    assert_eq!(out.stdout_text(), "1\n1\n1\n", "{out:?}");
    // What the check left running (its sleep and nc) was killed when it ended.
    let top = run.docker.top_processes(&format!("examroom-{env}-grading"), None::<TopOptions>).await.unwrap();
    assert_eq!(top.processes.unwrap_or_default().len(), 1);
    // Checks hold no capability but reading: they cannot change the candidate's network.
    let out = check(&run, &env, "ip link set lo down").await;
    assert_ne!(out.exit_code, Some(0), "{out:?}");
    assert!(run.leftovers().iter().any(|l| l.contains("-grading")));
}
