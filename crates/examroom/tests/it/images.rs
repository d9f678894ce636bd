//! Images as environments' bases (issue 12): the `examroom image` commands on each kind of archive, environments on
//! an imported image (its files, its Env and WorkingDir, one shared tree and separate writes, removal refused while
//! in use), and sessions on images through the server (the digest recorded, a missing image failing the session).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use examroom_images::{ImageStore, ImageWriter, Limits};
use examroom_runtime::{ExecutionRuntime, RuntimeError};
use serde_json::{json, Value};

use crate::common::{expect_output, shim_program, type_line, Harness};
use crate::server::{self, create, events, sid, wait_state, write_exam, Client, Options, TestServer};

const T: Duration = Duration::from_secs(20);

/// Host programs copied into the test image, with their libraries.
const PROGRAMS: &[&str] = &["cat", "ls", "id", "touch", "stat"];

/// A GNU header with root as the owner.
fn header() -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h
}

fn append_host_file(b: &mut tar::Builder<Vec<u8>>, src: &Path, inside: &str) {
    let mut f = std::fs::File::open(src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    b.append_file(inside.trim_start_matches('/'), &mut f).unwrap();
}

/// The libraries `bin` needs, as ldd names them (resolved through symlinks on the host).
fn libs(bin: &str) -> Vec<String> {
    let out = Command::new("ldd").arg(bin).output().unwrap();
    assert!(out.status.success(), "ldd {bin}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| match l.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => l.split_whitespace().next(),
        })
        .filter(|p| p.starts_with('/'))
        .map(String::from)
        .collect()
}

/// A small image made from host files, in two layers: the first has `/bin/sh` (dash), a few programs, their
/// libraries and an os-release; the second replaces the os-release, adds `/work` and removes `/bin/id` (a whiteout).
pub fn tiny_image() -> ImageWriter {
    let mut b = tar::Builder::new(Vec::new());
    let mut seen = std::collections::BTreeSet::new();
    append_host_file(&mut b, Path::new("/usr/bin/dash"), "bin/sh");
    let mut all_libs = libs("/usr/bin/dash");
    for p in PROGRAMS {
        let src = format!("/usr/bin/{p}");
        append_host_file(&mut b, Path::new(&src), &format!("bin/{p}"));
        all_libs.extend(libs(&src));
    }
    for l in all_libs {
        if seen.insert(l.clone()) {
            append_host_file(&mut b, Path::new(&l), &l);
        }
    }
    let mut h = header();
    let text = b"PRETTY_NAME=\"lower layer\"\n";
    h.set_size(text.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, "etc/os-release", &text[..]).unwrap();
    let lower = b.into_inner().unwrap();

    let mut b = tar::Builder::new(Vec::new());
    let text = b"PRETTY_NAME=\"examroom it image\"\nID=examroom-it\n";
    let mut h = header();
    h.set_size(text.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, "etc/os-release", &text[..]).unwrap();
    let mut h = header();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    h.set_mode(0o755);
    b.append_data(&mut h, "work", std::io::empty()).unwrap();
    let mut h = header();
    h.set_size(0);
    h.set_mode(0o644);
    b.append_data(&mut h, "bin/.wh.id", std::io::empty()).unwrap();
    let upper = b.into_inner().unwrap();
    ImageWriter::new().layer(lower).layer(upper).env("GREETING=hello from the image").working_dir("/work")
}

fn examroom(args: &[&str]) -> (bool, String) {
    let out = Command::new(shim_program()).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn image_commands_import_each_kind_list_and_remove() {
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state");
    let st = state.to_str().unwrap();
    let w = tiny_image();
    let layout = t.path().join("layout");
    let digest = w.write_oci_layout(&layout, None).unwrap();
    let oci = t.path().join("oci.tar");
    w.write_oci_archive(&oci, Some("it/oci:1")).unwrap();
    let docker = t.path().join("docker.tar");
    w.write_docker_archive(&docker, Some("it/docker:1")).unwrap();

    let (ok, out) =
        examroom(&["image", "import", "--state-dir", st, layout.to_str().unwrap(), "--name", "it/layout:1"]);
    assert!(ok, "{out}");
    assert!(out.contains("imported: it/layout:1") && out.contains(digest.as_str()), "{out}");
    let (ok, out) = examroom(&["image", "import", "--state-dir", st, oci.to_str().unwrap()]);
    assert!(ok && out.contains("already present: it/oci:1"), "{out}");
    let (ok, out) = examroom(&["image", "import", "--state-dir", st, docker.to_str().unwrap()]);
    assert!(ok && out.contains("imported: it/docker:1"), "{out}");

    let (ok, out) = examroom(&["image", "list", "--state-dir", st, "--json"]);
    assert!(ok, "{out}");
    let list: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(list.len(), 2, "{out}");
    let oci_image = list.iter().find(|i| i["digest"] == digest.as_str()).unwrap();
    assert_eq!(oci_image["names"], json!(["it/layout:1", "it/oci:1"]));
    assert_eq!(oci_image["layers"].as_array().unwrap().len(), 2);
    assert_eq!(oci_image["working_dir"], "/work");
    let (ok, out) = examroom(&["image", "list", "--state-dir", st]);
    assert!(ok && out.contains("it/docker:1"), "{out}");

    // A hostile archive: refused, with the reason, leaving nothing.
    let evil = t.path().join("evil.tar");
    let mut b = tar::Builder::new(Vec::new());
    let mut h = header();
    h.set_size(1);
    h.set_mode(0o644);
    h.as_old_mut().name[..12].copy_from_slice(b"../../escape");
    h.set_cksum();
    b.append(&h, &b"x"[..]).unwrap();
    ImageWriter::new().layer(b.into_inner().unwrap()).write_oci_archive(&evil, Some("it/evil:1")).unwrap();
    let (ok, out) = examroom(&["image", "import", "--state-dir", st, evil.to_str().unwrap()]);
    assert!(!ok && out.contains("climbs out"), "{out}");
    assert_eq!(std::fs::read_dir(state.join("images/tmp")).unwrap().count(), 0);

    // Removing: a name of two keeps the image, the digest removes it and its names.
    let (ok, out) = examroom(&["image", "rm", "--state-dir", st, "it/oci:1"]);
    assert!(ok, "{out}");
    let (ok, out) = examroom(&["image", "rm", "--state-dir", st, digest.as_str()]);
    assert!(ok && out.contains("deleted"), "{out}");
    let (ok, out) = examroom(&["image", "rm", "--state-dir", st, "it/layout:1"]);
    assert!(!ok && out.contains("not in the image store"), "{out}");
    let (_, out) = examroom(&["image", "list", "--state-dir", st, "--json"]);
    let list: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(list.len(), 1, "{out}");
}

/// The sample images `make images` builds (scripts/build-images.sh), by the name they carry.
const SAMPLES: &[(&str, &str)] = &[("examroom/tools:1", "tools.tar")];

/// Gives the runtime whose state directory is `state` the sample image `reference`: imported once into a store
/// that the tests share and keep (`target/images/it-store`; a second import finds it there), which becomes this
/// runtime's store (a symlink).
pub fn import_sample(state: &Path, reference: &str) {
    let (_, file) =
        SAMPLES.iter().find(|(r, _)| *r == reference).unwrap_or_else(|| panic!("no sample image {reference}"));
    let images = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/images");
    let archive = images.join(file);
    assert!(archive.is_file(), "{} is missing: run `make images` (scripts/build-images.sh)", archive.display());
    let shared = images.join("it-store");
    let store = ImageStore::open(&shared).unwrap();
    store.import(&archive, Some(reference), Limits::default()).unwrap();
    // An earlier build of the sample (the archive is built again when its script changes) is collected.
    for old in store.list().unwrap().into_iter().filter(|i| i.names.is_empty()) {
        let _ = store.remove(&old.digest, &|_| Vec::new());
    }
    std::os::unix::fs::symlink(&shared, state.join("images")).unwrap();
}

/// Imports the tiny image into the store of the runtime whose state directory is `state`.
pub fn import_tiny(state: &Path, name: &str) -> examroom_images::ImageInfo {
    let t = tempfile::tempdir().unwrap();
    let archive = t.path().join("tiny.tar");
    tiny_image().write_oci_archive(&archive, None).unwrap();
    let store = ImageStore::open(state.join("images")).unwrap();
    store.import(&archive, Some(name), Limits::default()).unwrap().image
}

fn inode(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).unwrap().ino()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environments_run_on_an_imported_image() {
    let h = Harness::new();
    let image = import_tiny(&h.state_dir, "it/tiny:1");
    let a = h.create_spec(|s| s.image = Some("it/tiny:1".into())).await;
    let b = h.create_spec(|s| s.image = Some(image.digest.clone())).await;
    // The image's files, its layers applied.
    let os = h.sh_ok(&a, "cat /etc/os-release").await;
    assert!(os.contains("examroom it image"), "{os}");
    let out = h.sh(&a, "test -e /bin/id || echo whited-out; test -e /usr/bin/python3 || echo no-host-usr").await;
    assert_eq!(out.stdout_text(), "whited-out\nno-host-usr\n", "{out:?}");
    // The image's Env and WorkingDir in the candidate's login shell.
    let mut term = h.rt.attach(&a, "main").await.unwrap();
    type_line(&mut term, "echo \"G=$GREETING P=$(pwd)\"").await;
    expect_output(&mut term, "G=hello from the image P=/work", T).await;
    drop(term);
    // One tree on disk for both; writes stay in each environment.
    h.sh_ok(&a, "echo from-a > /work/note; touch /etc/os-release").await;
    let out = h.sh(&b, "cat /work/note 2>&1; cat /etc/os-release").await;
    assert!(!out.stdout_text().contains("from-a"), "b sees a's write: {out:?}");
    assert!(out.stdout_text().contains("examroom it image"), "{out:?}");
    assert!(!image.rootfs.join("work/note").exists(), "a write reached the image's tree");
    let ino = inode(&image.rootfs.join("bin/sh"));
    let configs: Vec<Value> = [a, b]
        .iter()
        .map(|id| {
            let p = h.state_dir.join(&h.label).join(id.to_string()).join("config.json");
            serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
        })
        .collect();
    for c in &configs {
        assert_eq!(c["spec"]["base"]["rootfs"], image.rootfs.to_str().unwrap(), "{c}");
    }
    assert_eq!(std::fs::read_dir(h.state_dir.join("images/images")).unwrap().count(), 1, "one copy");
    // In use: `image rm` refuses and changes nothing.
    let st = h.state_dir.to_str().unwrap();
    let (ok, out) = examroom(&["image", "rm", "--state-dir", st, "it/tiny:1"]);
    assert!(!ok && out.contains("in use by environment"), "{out}");
    assert!(image.rootfs.join("bin/sh").exists());
    // A missing image is refused up front.
    let mut spec = examroom_runtime::EnvironmentSpec::new(examroom_core::EnvironmentId::new_v4());
    spec.image = Some("it/missing:1".into());
    match h.rt.create(spec).await {
        Err(RuntimeError::InvalidSpec { field, message }) => {
            assert_eq!(field, "base");
            assert!(message.contains("examroom image import"), "{message}");
        }
        other => panic!("expected InvalidSpec, got {other:?}"),
    }
    // Destroy leaves the image as it was.
    for id in [a, b] {
        assert!(h.rt.destroy(&id).await.unwrap().verified);
    }
    assert_eq!(inode(&image.rootfs.join("bin/sh")), ino);
    assert!(std::fs::read_to_string(image.rootfs.join("etc/os-release")).unwrap().contains("examroom it image"));
    // Unused now: removed, its tree collected.
    let (ok, out) = examroom(&["image", "rm", "--state-dir", st, "it/tiny:1"]);
    assert!(ok && out.contains("deleted"), "{out}");
    assert!(!image.rootfs.exists());
    h.teardown().await;
}

fn image_exams(catalog: &Path) {
    let env = "memory = \"256M\"\ncpu = \"500m\"\n";
    write_exam(
        catalog,
        "on-image",
        &format!("title = \"On an image\"\ndescription = \"i\"\nduration = \"5m\"\n[environment]\nbase = \"image:it/tiny:1\"\n{env}"),
    );
    write_exam(
        catalog,
        "missing-image",
        &format!("title = \"Missing\"\ndescription = \"m\"\nduration = \"5m\"\n[environment]\nbase = \"image:it/absent:1\"\n{env}"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_on_images_record_the_digest_and_a_missing_image_fails() {
    let s = TestServer::start_with(Options { exams: image_exams, ..Options::default() }).await;
    let image = import_tiny(&s.sandbox_dir(), "it/tiny:1");
    let c = Client::default();
    let (cand, proctor) = (s.candidate("cand-img"), s.proctor("proc-img"));
    // The catalog says which exams can start here, and why not.
    let a = c.get(&s.url("/api/v1/exams"), &proctor).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let exam = |id: &str| a.body["exams"].as_array().unwrap().iter().find(|e| e["id"] == id).unwrap().clone();
    assert_eq!(exam("on-image")["available"], true, "{}", a.text);
    assert_eq!(exam("missing-image")["available"], false, "{}", a.text);
    let why = exam("missing-image")["unavailable_reason"].as_str().unwrap().to_string();
    assert!(why.contains("examroom image import FILE --name it/absent:1"), "{why}");
    let a = c.get(&s.url("/api/v1/exams/missing-image"), &cand).await;
    assert_eq!(a.body["available"], false, "{}", a.text);
    assert!(!a.text.contains("examroom image import"), "candidates get no operator's command: {}", a.text);
    // The image store, for proctors only.
    let a = c.get(&s.url("/api/v1/images"), &cand).await;
    assert_eq!(a.status, 403, "{}", a.text);
    let a = c.get(&s.url("/api/v1/images"), &proctor).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        a.body["images"],
        json!([{ "names": ["it/tiny:1"], "digest": image.digest, "size_bytes": image.size_bytes, "layers": 2, "exams": ["on-image"] }]),
        "{}",
        a.text
    );
    assert_eq!(a.body["missing"], json!([{ "reference": "it/absent:1", "exams": ["missing-image"] }]), "{}", a.text);
    let v = create(&c, &s, &cand, "on-image").await;
    let id = sid(&v);
    wait_state(&c, &s, &cand, &id, Duration::from_secs(60), "ready").await;
    let evs = events(&c, &s, &proctor, &id).await;
    let recorded = evs.iter().find(|e| e["data"]["image_digest"].is_string()).unwrap_or_else(|| panic!("{evs:?}"));
    assert_eq!(recorded["data"]["image_digest"], image.digest.as_str());
    assert_eq!(recorded["data"]["image"], "it/tiny:1");
    let a = c.post(&s.url(&format!("{}/start", server::session_path(&id))), &cand, json!({})).await;
    assert!(a.status < 300, "{}", a.text);
    let a = c.post(&s.url(&format!("{}/submit", server::session_path(&id))), &cand, json!({})).await;
    assert!(a.status < 300, "{}", a.text);
    wait_state(&c, &s, &cand, &id, Duration::from_secs(60), "terminated").await;

    let v = create(&c, &s, &s.candidate("cand-img2"), "missing-image").await;
    let id = sid(&v);
    let v = wait_state(&c, &s, &proctor, &id, Duration::from_secs(60), "failed").await;
    assert_eq!(v["failure"]["code"], "provisioning_failed", "{v}");
    assert!(v["failure"]["detail"].as_str().unwrap_or("").contains("examroom image import"), "{v}");
    s.teardown().await;
}

#[test]
fn exam_validate_reports_a_missing_image_with_the_import_command() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let catalog = t.path().join("exams");
    write_exam(
        &catalog,
        "on-image",
        "title = \"I\"\ndescription = \"i\"\nduration = \"5m\"\n[environment]\nbase = \"image:it/tiny:1\"\n",
    );
    let (d, c) = (data.to_str().unwrap(), catalog.to_str().unwrap());
    let (ok, out) = examroom(&["exam", "validate", "--data-dir", d, c]);
    assert!(!ok, "{out}");
    assert!(out.contains("environment.base") && out.contains("exam.toml:6"), "{out}");
    assert!(out.contains(&format!("examroom image import --data-dir {d} FILE_OR_DIR --name it/tiny:1")), "{out}");
    import_tiny(&data.join("sandbox"), "it/tiny:1");
    let (ok, out) = examroom(&["exam", "validate", "--data-dir", d, c]);
    assert!(ok && out.contains("no problems"), "{out}");
}

/// Debian's registry (`docker-registry`) on a free port of 127.0.0.1, storing into a temporary directory; stopped
/// when dropped.
struct Registry {
    child: std::process::Child,
    addr: String,
    _tmp: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_registry() -> Registry {
    let tmp = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let config = tmp.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            tmp.path().join("data").display()
        ),
    )
    .unwrap();
    let child = Command::new("/usr/bin/docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("docker-registry (Debian's package; scripts/install-deps.sh installs it)");
    let r = Registry { child, addr, _tmp: tmp };
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if http.get(format!("http://{}/v2/", r.addr)).send().await.is_ok_and(|a| a.status().is_success()) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the registry did not answer on {}", r.addr);
}

/// Pushes the OCI layout at `layout` (one image) to `reference` as it is: the same blobs, the same manifest bytes.
async fn push_layout(layout: &Path, reference: &str) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = oci_client::Client::new(oci_client::client::ClientConfig {
        protocol: oci_client::client::ClientProtocol::Http,
        ..Default::default()
    });
    let r: oci_client::Reference = reference.parse().unwrap();
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let md = index["manifests"][0]["digest"].as_str().unwrap().to_string();
    let blob = |d: &str| std::fs::read(layout.join("blobs/sha256").join(d.trim_start_matches("sha256:"))).unwrap();
    let manifest_bytes = blob(&md);
    let manifest: Value = serde_json::from_slice(&manifest_bytes).unwrap();
    let mut digests = vec![manifest["config"]["digest"].as_str().unwrap().to_string()];
    digests.extend(manifest["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()));
    client.auth(&r, &oci_client::secrets::RegistryAuth::Anonymous, oci_client::RegistryOperation::Push).await.ok();
    for d in digests {
        client.push_blob(&r, blob(&d), &d).await.unwrap();
    }
    let ct = reqwest::header::HeaderValue::from_static("application/vnd.oci.image.manifest.v1+json");
    client.push_manifest_raw(&r, manifest_bytes, ct).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_pulled_from_a_registry_by_tag_and_by_digest() {
    let registry = start_registry().await;
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    let digest = tiny_image().write_oci_layout(&layout, None).unwrap();
    push_layout(&layout, &format!("{}/it/tiny:1", registry.addr)).await;
    let st = t.path().join("state");
    let st = st.to_str().unwrap();
    let pull = |reference: String, extra: Vec<String>| {
        let mut args = vec!["image".to_string(), "pull".into(), "--state-dir".into(), st.to_string()];
        args.push("--insecure-http".into());
        args.extend(extra);
        args.push(reference);
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            examroom(&args)
        })
    };
    // By tag: named after the repository and tag.
    let (ok, out) = pull(format!("{}/it/tiny:1", registry.addr), vec![]).await.unwrap();
    assert!(ok, "{out}");
    assert!(out.contains("imported: it/tiny:1") && out.contains(digest.as_str()), "{out}");
    // By digest: the same image.
    let (ok, out) =
        pull(format!("{}/it/tiny@{digest}", registry.addr), vec!["--name".into(), "it/pinned:1".into()]).await.unwrap();
    assert!(ok && out.contains("already present: it/pinned:1") && out.contains(digest.as_str()), "{out}");
    // A digest the registry does not have: refused, nothing imported.
    let wrong = format!("sha256:{}", "0".repeat(64));
    let (ok, out) = pull(format!("{}/it/tiny@{wrong}", registry.addr), vec![]).await.unwrap();
    assert!(!ok, "{out}");
    let (_, out) = examroom(&["image", "list", "--state-dir", st, "--json"]);
    let list: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(list.len(), 1, "{out}");
    assert_eq!(std::fs::read_dir(t.path().join("state/images/tmp")).unwrap().count(), 0);
    // A registry that never answers: the pull ends within its deadline.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let hold = std::thread::spawn(move || {
        let conns: Vec<_> = silent.incoming().take(1).collect();
        std::thread::sleep(Duration::from_secs(5));
        drop(conns);
    });
    let started = std::time::Instant::now();
    let (ok, out) = pull(format!("{silent_addr}/it/tiny:1"), vec!["--timeout".into(), "3".into()]).await.unwrap();
    assert!(!ok, "{out}");
    assert!(started.elapsed() < Duration::from_secs(7), "the pull took {:?}: {out}", started.elapsed());
    hold.join().unwrap();
}

/// An exam on the tiny image with a warm pool of one; the image is imported before the server starts (the data
/// directory is next to the catalog).
fn pooled_image_exam(catalog: &Path) {
    write_exam(
        catalog,
        "pooled-image",
        "title = \"P\"\ndescription = \"p\"\nduration = \"5m\"\n[environment]\nbase = \"image:it/tiny:1\"\n\
         memory = \"256M\"\ncpu = \"500m\"\n[pool]\nsize = 1\n",
    );
    import_tiny(&catalog.parent().unwrap().join("data/sandbox"), "it/tiny:1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_environment_on_an_image_records_its_digest_when_claimed() {
    let s = TestServer::start_with(Options { exams: pooled_image_exam, ..Options::default() }).await;
    let c = Client::default();
    let proctor = s.proctor("proc-pool-img");
    let digest = ImageStore::at(s.sandbox_dir().join("images")).resolve("it/tiny:1").unwrap().digest;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let a = c.get(&s.url("/api/v1/pools"), &proctor).await;
        let ready = a.body["pools"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["exam_id"] == "pooled-image"))
            .map_or(0, |p| p["ready"].as_u64().unwrap_or(0));
        if ready == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the pool never filled: {}", a.text);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let cand = s.candidate("cand-pool-img");
    let id = sid(&create(&c, &s, &cand, "pooled-image").await);
    wait_state(&c, &s, &cand, &id, Duration::from_secs(60), "ready").await;
    let evs = events(&c, &s, &proctor, &id).await;
    assert!(
        evs.iter().any(|e| e["data"]["progress"]["message"].as_str().unwrap_or("").contains("prepared for you")),
        "not a claim: {evs:?}"
    );
    let recorded = evs.iter().find(|e| e["data"]["image_digest"].is_string()).unwrap_or_else(|| panic!("{evs:?}"));
    assert_eq!(recorded["data"]["image_digest"], digest.as_str());
    s.teardown().await;
}
