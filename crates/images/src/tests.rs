//! The store against real archives made here with the `tar` crate: every kind of input, layers and whiteouts,
//! hostile archives, concurrency, removal, and a bounded fuzz of the parsers.

use std::path::Path;

use crate::{ImageError, ImageStore, ImageWriter, Imported, Limits};

/// A tar from entries: (path bytes, kind, content or link target, mode, uid).
#[derive(Clone)]
pub(crate) enum E<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    FileAs(&'a str, &'a [u8], u32, u64),
    Link(&'a str, &'a str),
    Hard(&'a str, &'a str),
    Dev(&'a str, tar::EntryType, u32, u32),
    /// A raw name written into the header as it is (no checks).
    RawFile(&'a [u8], &'a [u8]),
}

pub(crate) fn tar_of(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        match e {
            E::Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, p, std::io::empty()).unwrap();
            }
            E::File(p, c) => {
                h.set_mode(0o644);
                h.set_size(c.len() as u64);
                b.append_data(&mut h, p, *c).unwrap();
            }
            E::FileAs(p, c, mode, uid) => {
                h.set_mode(*mode);
                h.set_uid(*uid);
                h.set_size(c.len() as u64);
                b.append_data(&mut h, p, *c).unwrap();
            }
            E::Link(p, t) | E::Hard(p, t) => {
                let kind = if matches!(e, E::Link(..)) { tar::EntryType::Symlink } else { tar::EntryType::Link };
                h.set_entry_type(kind);
                h.set_mode(0o777);
                h.set_size(0);
                // Written raw: the builder would refuse some targets.
                let name = &mut h.as_old_mut().linkname;
                name[..t.len()].copy_from_slice(t.as_bytes());
                b.append_data(&mut h, p, std::io::empty()).unwrap();
            }
            E::Dev(p, kind, major, minor) => {
                h.set_entry_type(*kind);
                h.set_mode(0o666);
                h.set_size(0);
                h.set_device_major(*major).unwrap();
                h.set_device_minor(*minor).unwrap();
                b.append_data(&mut h, p, std::io::empty()).unwrap();
            }
            E::RawFile(p, c) => {
                h.set_mode(0o644);
                h.set_size(c.len() as u64);
                h.as_old_mut().name[..p.len()].copy_from_slice(p);
                h.set_cksum();
                b.append(&h, *c).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

fn base_layer() -> Vec<u8> {
    tar_of(&[
        E::Dir("etc"),
        E::File("etc/os-release", b"PRETTY_NAME=\"examroom test image\"\nID=examroom\n"),
        E::Dir("etc/keep"),
        E::File("etc/keep/a", b"a"),
        E::File("etc/keep/b", b"b"),
        E::Dir("opt"),
        E::Dir("opt/old"),
        E::File("opt/old/x", b"x"),
        E::File("opt/gone", b"gone"),
        E::Link("usr-lib", "opt/old"),
        E::Dev("dev-null", tar::EntryType::Char, 1, 3),
    ])
}

fn top_layer() -> Vec<u8> {
    tar_of(&[
        E::File("opt/.wh.gone", b""),
        E::Dir("opt/old"),
        E::File("opt/old/.wh..wh..opq", b""),
        E::File("opt/old/new", b"new"),
        E::File("etc/keep/b", b"b2"),
        E::Hard("etc/keep/c", "etc/keep/a"),
    ])
}

fn writer() -> ImageWriter {
    ImageWriter::new().layer(base_layer()).layer(top_layer()).env("GREETING=hello world").working_dir("/opt/old")
}

fn store(t: &Path) -> ImageStore {
    ImageStore::open(t.join("store")).unwrap()
}

fn read(root: &Path, rel: &str) -> Option<String> {
    std::fs::read_to_string(root.join(rel)).ok()
}

fn check_tree(root: &Path) {
    assert_eq!(read(root, "etc/keep/a").as_deref(), Some("a"));
    assert_eq!(read(root, "etc/keep/b").as_deref(), Some("b2"));
    assert_eq!(read(root, "etc/keep/c").as_deref(), Some("a"));
    assert!(read(root, "etc/os-release").unwrap().contains("examroom test image"));
    assert_eq!(read(root, "opt/gone"), None, "the whiteout removed it");
    assert_eq!(read(root, "opt/old/x"), None, "the opaque directory hid it");
    assert_eq!(read(root, "opt/old/new").as_deref(), Some("new"));
    assert!(!root.join("opt/.wh.gone").exists() && !root.join("opt/old/.wh..wh..opq").exists());
    assert!(!root.join("dev-null").exists(), "safe devices are skipped");
    assert_eq!(std::fs::read_link(root.join("usr-lib")).unwrap(), Path::new("opt/old"));
    let profile = read(root, crate::PROFILE_SCRIPT).unwrap();
    assert!(profile.contains("export GREETING='hello world'"), "{profile}");
    assert!(profile.contains("cd '/opt/old'"), "{profile}");
    assert!(read(root, "etc/profile").unwrap().contains("profile.d"));
}

#[test]
fn each_kind_of_input_imports_to_the_same_image() {
    let t = tempfile::tempdir().unwrap();
    let s = store(t.path());
    let w = writer();
    let layout = t.path().join("layout");
    let d1 = w.write_oci_layout(&layout, Some("test/base:1")).unwrap();
    let r = s.import(&layout, None, Limits::default()).unwrap();
    assert_eq!(r.outcome, Imported::Unpacked);
    assert_eq!(r.name.as_deref(), Some("test/base:1"));
    assert_eq!(r.image.digest, d1.to_string());
    assert_eq!(r.image.layers.len(), 2);
    assert_eq!(r.image.env, vec!["GREETING=hello world".to_string()]);
    assert_eq!(r.image.working_dir.as_deref(), Some("/opt/old"));
    check_tree(&r.image.rootfs);

    let archive = t.path().join("oci.tar");
    let d2 = w.write_oci_archive(&archive, None).unwrap();
    assert_eq!(d1, d2);
    let r2 = s.import(&archive, Some("other:2"), Limits::default()).unwrap();
    assert_eq!(r2.outcome, Imported::AlreadyPresent);
    assert_eq!(r2.image.names, vec!["other:2".to_string(), "test/base:1".to_string()]);

    let docker = t.path().join("docker.tar");
    w.write_docker_archive(&docker, Some("dock:3")).unwrap();
    let r3 = s.import(&docker, None, Limits::default()).unwrap();
    assert_eq!(r3.outcome, Imported::Unpacked, "a docker save is its own manifest");
    assert_eq!(r3.name.as_deref(), Some("dock:3"));
    check_tree(&r3.image.rootfs);
    assert_eq!(s.resolve("dock:3").unwrap().digest, r3.image.digest);
    assert_eq!(s.resolve(&r3.image.digest).unwrap().names, vec!["dock:3".to_string()]);
    assert_eq!(s.list().unwrap().len(), 2);
    assert!(matches!(s.resolve("missing:1"), Err(ImageError::NotFound { .. })));
    // Nothing left in tmp.
    assert_eq!(std::fs::read_dir(s.dir().join("tmp")).unwrap().count(), 0);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(s.dir()).unwrap().permissions().mode() & 0o777, 0o700);
}

#[test]
fn zstd_layers_import_like_gzipped_ones() {
    let t = tempfile::tempdir().unwrap();
    let s = store(t.path());
    let layout = t.path().join("layout");
    let d = writer().zstd().write_oci_layout(&layout, Some("z:1")).unwrap();
    let manifest = std::fs::read_to_string(layout.join("blobs/sha256").join(d.hex())).unwrap();
    assert!(manifest.contains("tar+zstd"), "{manifest}");
    let r = s.import(&layout, None, Limits::default()).unwrap();
    assert_eq!(r.name.as_deref(), Some("z:1"));
    check_tree(&r.image.rootfs);
}

#[test]
fn removal_keeps_named_and_used_images() {
    let t = tempfile::tempdir().unwrap();
    let s = store(t.path());
    let layout = t.path().join("layout");
    writer().write_oci_layout(&layout, None).unwrap();
    let a = s.import(&layout, Some("a:1"), Limits::default()).unwrap().image;
    s.import(&layout, Some("b:1"), Limits::default()).unwrap();
    // One of two names: the image stays.
    assert!(s.remove("a:1", &|_| Vec::new()).unwrap().is_empty());
    assert!(a.rootfs.exists());
    // In use: refused, nothing changes.
    let rootfs = a.rootfs.clone();
    let e = s.remove("b:1", &|p| if p == rootfs { vec!["env-1".into()] } else { vec![] }).unwrap_err();
    assert!(matches!(e, ImageError::InUse { .. }), "{e}");
    assert!(a.rootfs.exists());
    assert_eq!(s.resolve("b:1").unwrap().digest, a.digest);
    // Unused: collected.
    assert_eq!(s.remove("b:1", &|_| Vec::new()).unwrap(), vec![a.digest.clone()]);
    assert!(!a.rootfs.exists());
    assert!(s.list().unwrap().is_empty());
    assert!(matches!(s.remove(&a.digest, &|_| Vec::new()), Err(ImageError::NotFound { .. })));
}

#[test]
fn concurrent_imports_of_one_image_end_with_one_copy() {
    let t = tempfile::tempdir().unwrap();
    let s = store(t.path());
    let archive = t.path().join("oci.tar");
    writer().write_oci_archive(&archive, Some("same:1")).unwrap();
    let results: Vec<_> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..4).map(|_| sc.spawn(|| s.import(&archive, None, Limits::default()).unwrap())).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.iter().filter(|r| r.outcome == Imported::Unpacked).count(), 1);
    assert_eq!(std::fs::read_dir(s.dir().join("images")).unwrap().count(), 1);
    assert_eq!(std::fs::read_dir(s.dir().join("tmp")).unwrap().count(), 0);
    check_tree(&results[0].image.rootfs);
}

/// Imports `w` as an OCI archive and expects a refusal mentioning `why`; the store is left as it was.
fn refused(w: ImageWriter, limits: Limits, why: &str) {
    let t = tempfile::tempdir().unwrap();
    let s = store(t.path());
    let archive = t.path().join("x.tar");
    w.write_oci_archive(&archive, Some("x:1")).unwrap();
    let e = s.import(&archive, None, limits).unwrap_err();
    assert!(e.to_string().contains(why), "expected {why:?}, got: {e}");
    assert_eq!(std::fs::read_dir(s.dir().join("images")).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(s.dir().join("names")).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(s.dir().join("tmp")).unwrap().count(), 0, "a failed import leaves nothing");
    assert!(!t.path().join("escaped").exists());
}

#[test]
fn hostile_layers_are_refused() {
    let one = |entries: &[E<'_>]| ImageWriter::new().layer(base_layer()).layer(tar_of(entries));
    refused(one(&[E::RawFile(b"../escaped", b"x")]), Limits::default(), "climbs out");
    refused(one(&[E::RawFile(b"etc/../../escaped", b"x")]), Limits::default(), "climbs out");
    refused(one(&[E::RawFile(b"/escaped", b"x")]), Limits::default(), "absolute path");
    refused(one(&[E::Link("etc/up", "../../escaped")]), Limits::default(), "escapes the image");
    refused(one(&[E::Hard("etc/h", "../escaped")]), Limits::default(), "escapes the image");
    refused(one(&[E::Hard("etc/h", "/etc/passwd")]), Limits::default(), "escapes the image");
    // A symlink the archive made is never followed, even one that points inside.
    refused(one(&[E::Link("lnk", "/"), E::File("lnk/escaped", b"x")]), Limits::default(), "through a symlink");
    refused(one(&[E::Dev("etc/sda", tar::EntryType::Block, 8, 0)]), Limits::default(), "block device");
    refused(one(&[E::Dev("etc/mem", tar::EntryType::Char, 1, 1)]), Limits::default(), "character device 1:1");
    refused(one(&[E::FileAs("bin/su", b"x", 0o4755, 1000)]), Limits::default(), "set-user-ID");
    let big = vec![0u8; 64 << 10];
    refused(one(&[E::File("big", &big)]), Limits { max_bytes: 32 << 10, max_inodes: 1000 }, "size cap");
    refused(one(&[E::File("f", b"")]), Limits { max_bytes: 1 << 20, max_inodes: 5 }, "inode cap");
    // Accepted: set-user-ID root, absolute symlinks (they resolve in the environment's root).
    let t = tempfile::tempdir().unwrap();
    let l = t.path().join("l");
    one(&[E::FileAs("su", b"x", 0o4755, 0), E::Link("abs", "/etc/os-release")]).write_oci_layout(&l, None).unwrap();
    store(t.path()).import(&l, None, Limits::default()).unwrap();
}

/// Rewrites one blob of a layout in place.
fn tamper(layout: &Path, pick: impl Fn(&str, &[u8]) -> Option<Vec<u8>>) {
    for e in std::fs::read_dir(layout.join("blobs/sha256")).unwrap().flatten() {
        let bytes = std::fs::read(e.path()).unwrap();
        if let Some(new) = pick(&e.file_name().to_string_lossy(), &bytes) {
            std::fs::write(e.path(), new).unwrap();
        }
    }
}

fn layout_refused(t: &Path, why: &str) {
    let s = store(t);
    let e = s.import(&t.join("layout"), None, Limits::default()).unwrap_err();
    assert!(e.to_string().contains(why), "expected {why:?}, got: {e}");
    assert_eq!(std::fs::read_dir(s.dir().join("images")).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(s.dir().join("tmp")).unwrap().count(), 0);
}

#[test]
fn tampered_and_unsupported_layouts_are_refused() {
    // A layer whose bytes do not match its digest.
    let t = tempfile::tempdir().unwrap();
    writer().write_oci_layout(&t.path().join("layout"), None).unwrap();
    let other = writer().layer(tar_of(&[E::File("evil", b"evil")]));
    let evil_gz = {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar_of(&[E::File("evil", b"evil")])).unwrap();
        gz.finish().unwrap()
    };
    let _ = other;
    tamper(&t.path().join("layout"), |_, b| (b.starts_with(&[0x1f, 0x8b])).then(|| evil_gz.clone()));
    layout_refused(t.path(), "mismatch");

    // An unsupported layer media type.
    let t = tempfile::tempdir().unwrap();
    let l = t.path().join("layout");
    let d = writer().write_oci_layout(&l, None).unwrap();
    let mpath = l.join("blobs/sha256").join(d.hex());
    let m = std::fs::read_to_string(&mpath).unwrap().replace("tar+gzip", "tar+lzma");
    std::fs::write(&mpath, &m).unwrap();
    let digest = crate::Digest::of(m.as_bytes());
    std::fs::rename(&mpath, l.join("blobs/sha256").join(digest.hex())).unwrap();
    let idx = std::fs::read_to_string(l.join("index.json")).unwrap().replace(d.hex(), digest.hex());
    std::fs::write(l.join("index.json"), idx).unwrap();
    layout_refused(t.path(), "unsupported layer media type");

    // A manifest list with no entry for this platform.
    let t = tempfile::tempdir().unwrap();
    let l = t.path().join("layout");
    let d = writer().write_oci_layout(&l, None).unwrap();
    let msize = std::fs::metadata(l.join("blobs/sha256").join(d.hex())).unwrap().len();
    let list = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": d.to_string(), "size": msize,
            "platform": {"os": "linux", "architecture": "s390x"}
        }]
    })
    .to_string();
    let ld = crate::Digest::of(list.as_bytes());
    std::fs::write(l.join("blobs/sha256").join(ld.hex()), &list).unwrap();
    let idx = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json", "digest": ld.to_string(), "size": list.len()
        }]
    });
    std::fs::write(l.join("index.json"), idx.to_string()).unwrap();
    layout_refused(t.path(), "no linux/amd64");
    // The same list with this platform in it imports.
    let ok_list = list.replace("s390x", "amd64");
    let od = crate::Digest::of(ok_list.as_bytes());
    std::fs::write(l.join("blobs/sha256").join(od.hex()), &ok_list).unwrap();
    let idx = idx.to_string().replace(ld.hex(), od.hex());
    std::fs::write(l.join("index.json"), idx).unwrap();
    let r = store(t.path()).import(&l, Some("multi:1"), Limits::default()).unwrap();
    assert_eq!(r.image.digest, d.to_string(), "the platform's manifest is the image");

    // A truncated archive.
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("x.tar");
    writer().write_oci_archive(&a, None).unwrap();
    let bytes = std::fs::read(&a).unwrap();
    std::fs::write(&a, &bytes[..bytes.len() / 2 + 100]).unwrap();
    let s = store(t.path());
    let e = s.import(&a, None, Limits::default()).unwrap_err();
    assert!(matches!(e, ImageError::Corrupt(_) | ImageError::Refused(_)), "{e}");
    assert_eq!(std::fs::read_dir(s.dir().join("tmp")).unwrap().count(), 0);
}

/// A bounded fuzz of the parsers: random mutations of valid archives (OCI and docker), each import must end in a
/// clean error or a success, never a panic, and leave no scratch behind.
#[test]
fn mutated_archives_never_panic() {
    let t = tempfile::tempdir().unwrap();
    let s = store(t.path());
    let mut seeds = Vec::new();
    for (i, docker) in [false, true].into_iter().enumerate() {
        let p = t.path().join(format!("seed{i}.tar"));
        if docker {
            writer().write_docker_archive(&p, Some("f:1")).unwrap();
        } else {
            writer().write_oci_archive(&p, Some("f:1")).unwrap();
        }
        seeds.push(std::fs::read(&p).unwrap());
    }
    // xorshift: deterministic, no extra crate.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut runs = 0;
    let (mut ok, mut errors) = (0, 0);
    while runs < 400 && std::time::Instant::now() < deadline {
        let mut b = seeds[runs % seeds.len()].clone();
        for _ in 0..1 + next() % 8 {
            let at = (next() as usize) % b.len();
            match next() % 4 {
                0 => b[at] = next() as u8,
                1 => b[at] ^= 1 << (next() % 8),
                2 => b.truncate(at.max(1)),
                _ => b[at] = b"0123456789./{}\":,"[(next() % 17) as usize],
            }
        }
        let p = t.path().join("m.tar");
        std::fs::write(&p, &b).unwrap();
        match s.import(&p, None, Limits { max_bytes: 8 << 20, max_inodes: 10_000 }) {
            Ok(_) => ok += 1,
            Err(e) => {
                assert!(!e.to_string().is_empty());
                errors += 1;
            }
        }
        runs += 1;
    }
    assert!(runs >= 20, "only {runs} runs");
    assert!(errors > 0, "mutations never failed ({ok} ok)");
    assert_eq!(std::fs::read_dir(s.dir().join("tmp")).unwrap().count(), 0);
}
