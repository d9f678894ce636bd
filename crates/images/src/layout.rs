//! Reading what an import was given: an OCI image layout (a directory, or staged from an OCI archive) or a
//! `docker save` / `podman save` archive (staged), down to one manifest, its verified config and its layers.

use std::io::{BufRead, BufReader, Read};
use std::os::fd::OwnedFd;
use std::path::Path;

use oci_spec::image::{
    Arch, Descriptor, ImageConfiguration, ImageIndex, ImageManifest, ImageManifestBuilder, MediaType, Os,
};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use serde::Deserialize;

use crate::digest::{Digest, Hashing};
use crate::unpack::Tree;
use crate::{ImageError, Limits, Result};

/// The most a JSON document (index, manifest, config) may be.
const JSON_CAP: u64 = 4 << 20;
/// How deep indexes may nest.
const INDEX_DEPTH: usize = 4;

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// A directory that blobs are read from, beneath it only.
pub(crate) struct Source {
    dir: OwnedFd,
}

impl Source {
    /// A layout directory given by the operator.
    pub(crate) fn dir(path: &Path) -> Result<Source> {
        let dir = rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| ImageError::Io { context: format!("open {}", path.display()), source: e.into() })?;
        Ok(Source { dir })
    }

    /// Unpacks the archive at `archive` (a tar: an OCI archive or a docker/podman save) into `stage` (an empty
    /// directory), as hostile input, and reads from there.
    pub(crate) fn staged(archive: &Path, stage: &Path, limits: Limits) -> Result<Source> {
        let file = std::fs::File::open(archive).map_err(ImageError::io(format!("open {}", archive.display())))?;
        let mut tree = Tree::open(stage, limits)?;
        let mut head = BufReader::new(file);
        let magic = head.fill_buf().map_err(ImageError::io("read the archive"))?.to_vec();
        let r: Box<dyn Read> = match compression_of(&magic) {
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(head)),
            Compression::Zstd => {
                Box::new(zstd::Decoder::with_buffer(head).map_err(|e| ImageError::Corrupt(format!("zstd: {e}")))?)
            }
            Compression::None => Box::new(head),
        };
        tree.apply(r).map_err(|e| match e {
            ImageError::Corrupt(m) => ImageError::Corrupt(format!("the archive {}: {m}", archive.display())),
            other => other,
        })?;
        Source::dir(stage)
    }

    /// Opens `rel` beneath the directory (symlinks within it are followed, none out of it).
    fn open(&self, rel: &str) -> Result<std::fs::File> {
        let fd = rustix::fs::openat2(
            &self.dir,
            rel,
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(|e| match e {
            rustix::io::Errno::NOENT => ImageError::Corrupt(format!("{rel} is missing")),
            rustix::io::Errno::XDEV => ImageError::Refused(format!("{rel} points out of the image")),
            e => ImageError::Io { context: format!("open {rel}"), source: e.into() },
        })?;
        let f = std::fs::File::from(fd);
        let md = f.metadata().map_err(ImageError::io(format!("stat {rel}")))?;
        if !md.is_file() {
            return Err(ImageError::Corrupt(format!("{rel} is not a file")));
        }
        Ok(f)
    }

    fn exists(&self, rel: &str) -> bool {
        self.open(rel).is_ok()
    }

    fn read(&self, rel: &str) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.open(rel)?
            .take(JSON_CAP + 1)
            .read_to_end(&mut out)
            .map_err(|e| ImageError::Corrupt(format!("{rel}: {e}")))?;
        if out.len() as u64 > JSON_CAP {
            return Err(ImageError::Refused(format!("{rel} is over {JSON_CAP} bytes")));
        }
        Ok(out)
    }

    /// Reads a blob of a layout and checks it against its descriptor.
    fn blob(&self, d: &Descriptor) -> Result<(Vec<u8>, Digest)> {
        let digest =
            Digest::parse(d.digest().as_ref()).map_err(|e| ImageError::Refused(format!("descriptor digest: {e}")))?;
        let bytes = self.read(&blob_path(&digest))?;
        check(&bytes, &digest, Some(d.size()))?;
        Ok((bytes, digest))
    }
}

fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

fn check(bytes: &[u8], want: &Digest, size: Option<u64>) -> Result<()> {
    let got = Digest::of(bytes);
    if got != *want {
        return Err(ImageError::Refused(format!("digest mismatch: expected {want}, the content is {got}")));
    }
    if let Some(s) = size {
        if s != bytes.len() as u64 {
            return Err(ImageError::Refused(format!("size mismatch for {want}: expected {s}, got {}", bytes.len())));
        }
    }
    Ok(())
}

/// How a layer is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

fn compression_of(magic: &[u8]) -> Compression {
    if magic.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// One layer to apply.
#[derive(Clone, Debug)]
pub(crate) struct Layer {
    /// Where it is, below the source.
    path: String,
    /// `None`: found out from its first bytes (docker save).
    compression: Option<Compression>,
    /// The digest of the blob as stored, when known.
    digest: Option<Digest>,
    /// Its size as stored, when known.
    size: Option<u64>,
    /// The digest of the uncompressed tar (the config's `diff_id`).
    diff_id: Digest,
}

/// What an import found: one image.
pub(crate) struct Plan {
    pub manifest: Vec<u8>,
    pub digest: Digest,
    pub config: Vec<u8>,
    pub config_digest: Digest,
    pub parsed_config: ImageConfiguration,
    pub layers: Vec<Layer>,
    /// Names the archive gives the image.
    pub names: Vec<String>,
}

/// The platform of this host, as OCI names it.
pub fn host_arch() -> Arch {
    match std::env::consts::ARCH {
        "x86_64" => Arch::Amd64,
        "aarch64" => Arch::ARM64,
        other => Arch::from(other),
    }
}

/// Finds the one image in `source`; `wanted` picks one by name where there are several.
pub(crate) fn plan(source: &Source, wanted: Option<&str>) -> Result<Plan> {
    if source.exists("index.json") && source.exists("oci-layout") {
        plan_oci(source, wanted)
    } else if source.exists("manifest.json") {
        plan_docker(source, wanted)
    } else {
        Err(ImageError::Corrupt(
            "neither an OCI image layout (oci-layout and index.json) nor a docker save archive (manifest.json)".into(),
        ))
    }
}

fn ref_names(d: &Descriptor) -> Vec<String> {
    let Some(a) = d.annotations() else { return Vec::new() };
    ["io.containerd.image.name", "org.opencontainers.image.ref.name"]
        .iter()
        .filter_map(|k| a.get(*k).cloned())
        .collect()
}

fn name_matches(names: &[String], wanted: &str) -> bool {
    let tag = wanted.rsplit_once(':').map(|(_, t)| t);
    names.iter().any(|n| {
        n == wanted
            || Some(n.as_str()) == tag
            || crate::names::validate_name(n).is_ok_and(|v| v == wanted || v.ends_with(&format!("/{wanted}")))
    })
}

fn plan_oci(source: &Source, wanted: Option<&str>) -> Result<Plan> {
    let layout = source.read("oci-layout")?;
    let v: serde_json::Value =
        serde_json::from_slice(&layout).map_err(|e| ImageError::Corrupt(format!("oci-layout: {e}")))?;
    if v.get("imageLayoutVersion").and_then(|v| v.as_str()) != Some("1.0.0") {
        return Err(ImageError::Refused("oci-layout: only imageLayoutVersion 1.0.0 is supported".into()));
    }
    let index = ImageIndex::from_reader(&source.read("index.json")?[..])
        .map_err(|e| ImageError::Corrupt(format!("index.json: {e}")))?;
    let mut candidates: Vec<&Descriptor> = index.manifests().iter().collect();
    if candidates.is_empty() {
        return Err(ImageError::Corrupt("index.json lists no image".into()));
    }
    if let (Some(w), true) = (wanted, candidates.len() > 1) {
        let named: Vec<&Descriptor> = candidates.iter().copied().filter(|d| name_matches(&ref_names(d), w)).collect();
        if !named.is_empty() {
            candidates = named;
        }
    }
    // Several entries for one image (one per tag) are fine; several images are not.
    candidates.dedup_by(|a, b| a.digest() == b.digest());
    if candidates.len() > 1 {
        return Err(ImageError::Refused(format!(
            "the layout holds {} images; name the one to import with --name NAME:TAG",
            candidates.len()
        )));
    }
    let top = candidates[0];
    let names = ref_names(top).into_iter().filter(|n| n.contains(':') || n.contains('/')).collect();
    let (manifest, digest) = resolve_manifest(source, top, 0)?;
    let parsed =
        ImageManifest::from_reader(&manifest[..]).map_err(|e| ImageError::Corrupt(format!("manifest: {e}")))?;
    let cd = parsed.config();
    match cd.media_type() {
        MediaType::ImageConfig => {}
        MediaType::Other(m) if m == DOCKER_CONFIG => {}
        other => return Err(ImageError::Refused(format!("unsupported config media type {other}"))),
    }
    let (config, config_digest) = source.blob(cd)?;
    let parsed_config = parse_config(&config)?;
    let diff_ids = diff_ids(&parsed_config, parsed.layers().len())?;
    let mut layers = Vec::new();
    for (d, diff_id) in parsed.layers().iter().zip(diff_ids) {
        let compression = match d.media_type() {
            MediaType::ImageLayer => Compression::None,
            MediaType::ImageLayerGzip => Compression::Gzip,
            MediaType::ImageLayerZstd => Compression::Zstd,
            MediaType::Other(m) if m == DOCKER_LAYER_GZIP => Compression::Gzip,
            MediaType::Other(m) if m == DOCKER_LAYER => Compression::None,
            other => return Err(ImageError::Refused(format!("unsupported layer media type {other}"))),
        };
        let digest =
            Digest::parse(d.digest().as_ref()).map_err(|e| ImageError::Refused(format!("layer digest: {e}")))?;
        layers.push(Layer {
            path: blob_path(&digest),
            compression: Some(compression),
            digest: Some(digest),
            size: Some(d.size()),
            diff_id,
        });
    }
    Ok(Plan { manifest, digest, config, config_digest, parsed_config, layers, names })
}

/// Follows indexes (manifest lists) down to this platform's manifest; returns its bytes and digest.
fn resolve_manifest(source: &Source, d: &Descriptor, depth: usize) -> Result<(Vec<u8>, Digest)> {
    if depth > INDEX_DEPTH {
        return Err(ImageError::Refused("indexes nested too deep".into()));
    }
    let is_index = match d.media_type() {
        MediaType::ImageIndex => true,
        MediaType::Other(m) if m == DOCKER_LIST => true,
        MediaType::ImageManifest => false,
        MediaType::Other(m) if m == DOCKER_MANIFEST => false,
        other => return Err(ImageError::Refused(format!("unsupported media type {other}"))),
    };
    let (bytes, digest) = source.blob(d)?;
    if !is_index {
        return Ok((bytes, digest));
    }
    let index = ImageIndex::from_reader(&bytes[..]).map_err(|e| ImageError::Corrupt(format!("index {digest}: {e}")))?;
    let arch = host_arch();
    let want = format!("linux/{arch}");
    let pick = index
        .manifests()
        .iter()
        .find(|m| m.platform().as_ref().is_some_and(|p| *p.os() == Os::Linux && *p.architecture() == arch));
    match pick {
        Some(m) => resolve_manifest(source, m, depth + 1),
        None => {
            let have: Vec<String> = index
                .manifests()
                .iter()
                .filter_map(|m| m.platform().as_ref().map(|p| format!("{}/{}", p.os(), p.architecture())))
                .collect();
            Err(ImageError::Refused(format!(
                "the manifest list has no {want} image (it has: {})",
                if have.is_empty() { "none with a platform".into() } else { have.join(", ") }
            )))
        }
    }
}

fn parse_config(bytes: &[u8]) -> Result<ImageConfiguration> {
    let c = ImageConfiguration::from_reader(bytes).map_err(|e| ImageError::Corrupt(format!("image config: {e}")))?;
    if *c.os() != Os::Linux {
        return Err(ImageError::Refused(format!("the image is for {}, not linux", c.os())));
    }
    let arch = host_arch();
    if *c.architecture() != arch {
        return Err(ImageError::Refused(format!("the image is for {}, this host is {arch}", c.architecture())));
    }
    Ok(c)
}

fn diff_ids(c: &ImageConfiguration, layers: usize) -> Result<Vec<Digest>> {
    let ids = c.rootfs().diff_ids();
    if ids.len() != layers {
        return Err(ImageError::Corrupt(format!("the config lists {} layers, the manifest {layers}", ids.len())));
    }
    ids.iter().map(|d| Digest::parse(d).map_err(|e| ImageError::Corrupt(format!("diff_id: {e}")))).collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// A digest that a path in a docker save names: `blobs/sha256/<hex>`, or `<hex>.json` (the legacy config).
fn digest_in_path(p: &str) -> Option<Digest> {
    let hex = p.strip_prefix("blobs/sha256/").or_else(|| p.strip_suffix(".json"))?;
    Digest::parse(&format!("sha256:{hex}")).ok()
}

fn plan_docker(source: &Source, wanted: Option<&str>) -> Result<Plan> {
    let entries: Vec<DockerEntry> = serde_json::from_slice(&source.read("manifest.json")?)
        .map_err(|e| ImageError::Corrupt(format!("manifest.json: {e}")))?;
    let mut chosen: Vec<&DockerEntry> = entries.iter().collect();
    if let (Some(w), true) = (wanted, chosen.len() > 1) {
        let named: Vec<&DockerEntry> =
            chosen.iter().copied().filter(|e| name_matches(e.repo_tags.as_deref().unwrap_or(&[]), w)).collect();
        if !named.is_empty() {
            chosen = named;
        }
    }
    let entry = match chosen.as_slice() {
        [one] => *one,
        [] => return Err(ImageError::Corrupt("manifest.json lists no image".into())),
        many => {
            return Err(ImageError::Refused(format!(
                "the archive holds {} images; name the one to import with --name NAME:TAG",
                many.len()
            )))
        }
    };
    let config = source.read(&entry.config)?;
    let config_digest = Digest::of(&config);
    if let Some(want) = digest_in_path(&entry.config) {
        check(&config, &want, None)?;
    }
    let parsed_config = parse_config(&config)?;
    let ids = diff_ids(&parsed_config, entry.layers.len())?;
    let mut layers = Vec::new();
    let mut descriptors = Vec::new();
    for (path, diff_id) in entry.layers.iter().zip(ids) {
        let size = source.open(path)?.metadata().map_err(ImageError::io(format!("stat {path}")))?.len();
        descriptors.push(Descriptor::new(MediaType::ImageLayer, size, oci_digest(&diff_id)?));
        layers.push(Layer {
            path: path.clone(),
            compression: None,
            digest: digest_in_path(path),
            size: Some(size),
            diff_id,
        });
    }
    // The image's identity: an OCI manifest made from what the archive says, content-addressed as any other.
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(Descriptor::new(MediaType::ImageConfig, config.len() as u64, oci_digest(&config_digest)?))
        .layers(descriptors)
        .build()
        .map_err(|e| ImageError::Corrupt(format!("manifest: {e}")))?;
    let manifest = manifest.to_string().map_err(|e| ImageError::Corrupt(format!("manifest: {e}")))?.into_bytes();
    let digest = Digest::of(&manifest);
    let names = entry.repo_tags.clone().unwrap_or_default();
    Ok(Plan { manifest, digest, config, config_digest, parsed_config, layers, names })
}

fn oci_digest(d: &Digest) -> Result<oci_spec::image::Digest> {
    d.as_str().parse().map_err(|e| ImageError::Corrupt(format!("digest {d}: {e}")))
}

/// Applies `layer` (number `n`, from 1) from `source` onto `tree`, verifying the blob and its uncompressed content.
pub(crate) fn apply_layer(source: &Source, tree: &mut Tree, layer: &Layer, n: usize, limits: Limits) -> Result<()> {
    let what = format!("layer {n} ({})", layer.digest.as_ref().unwrap_or(&layer.diff_id));
    let file = source.open(&layer.path)?;
    let mut raw = Hashing::new(file, limits.max_bytes);
    let diff = {
        let mut buffered = BufReader::new(&mut raw);
        let compression = match layer.compression {
            Some(c) => c,
            None => compression_of(buffered.fill_buf().map_err(|e| ImageError::Corrupt(format!("{what}: {e}")))?),
        };
        let dec: Box<dyn Read + '_> = match compression {
            Compression::None => Box::new(&mut buffered),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&mut buffered)),
            Compression::Zstd => Box::new(
                zstd::Decoder::with_buffer(&mut buffered).map_err(|e| ImageError::Corrupt(format!("{what}: {e}")))?,
            ),
        };
        // The uncompressed stream may be bigger than the content (headers, padding): a generous bound.
        let mut uncompressed = Hashing::new(dec, limits.max_bytes.saturating_mul(2).saturating_add(1 << 30));
        tree.apply(&mut uncompressed).map_err(|e| prefix(&what, e))?;
        let (diff, _) = uncompressed.finish().map_err(|e| ImageError::Corrupt(format!("{what}: {e}")))?;
        std::io::copy(&mut buffered, &mut std::io::sink()).map_err(|e| ImageError::Corrupt(format!("{what}: {e}")))?;
        diff
    };
    let (digest, size) = raw.finish().map_err(|e| ImageError::Corrupt(format!("{what}: {e}")))?;
    if let Some(want) = &layer.digest {
        if *want != digest {
            return Err(ImageError::Refused(format!("{what}: digest mismatch: the content is {digest}")));
        }
    }
    if let Some(s) = layer.size {
        if s != size {
            return Err(ImageError::Refused(format!("{what}: size mismatch: expected {s} bytes, got {size}")));
        }
    }
    if diff != layer.diff_id {
        return Err(ImageError::Refused(format!(
            "{what}: digest mismatch: the config's diff_id is {}, the content is {diff}",
            layer.diff_id
        )));
    }
    Ok(())
}

fn prefix(what: &str, e: ImageError) -> ImageError {
    match e {
        ImageError::Refused(m) => ImageError::Refused(format!("{what}: {m}")),
        ImageError::Corrupt(m) => ImageError::Corrupt(format!("{what}: {m}")),
        other => other,
    }
}

/// The image's config, as recorded.
pub(crate) fn runtime_config(c: &ImageConfiguration) -> (Vec<String>, Option<String>, Option<String>) {
    let Some(cfg) = c.config() else { return (Vec::new(), None, None) };
    let env = cfg.env().clone().unwrap_or_default();
    let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    (env, nonempty(cfg.working_dir()), nonempty(cfg.user()))
}
