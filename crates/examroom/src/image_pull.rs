//! `examroom image pull REF`: an image from an OCI registry, fetched into a layout directory in the store's `tmp/`
//! (within a deadline, each blob within its declared size), then imported like any layout (every digest checked
//! again, the layers unpacked as hostile input).

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use examroom_images::{Digest, ImageStore, ImportReport, Limits};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::Value;
use tokio::io::AsyncWrite;

/// The most a manifest or index may be.
const MANIFEST_CAP: usize = 4 << 20;

/// What `pull` needs.
pub struct Pull {
    pub reference: String,
    pub name: Option<String>,
    /// A JSON file `{"username": …, "password": …}`.
    pub credentials: Option<PathBuf>,
    /// Plain HTTP (a registry on the loopback, for tests).
    pub insecure_http: bool,
    pub timeout: Duration,
    pub limits: Limits,
}

/// A writer that fails past `cap` bytes.
struct Capped<W> {
    inner: W,
    left: u64,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Capped<W> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if buf.len() as u64 > self.left {
            return Poll::Ready(Err(std::io::Error::other("the blob is larger than its descriptor says")));
        }
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            self.left -= *n as u64;
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A directory removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(serde::Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

const ACCEPTED: [&str; 4] =
    [OCI_IMAGE_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, IMAGE_MANIFEST_LIST_MEDIA_TYPE];

fn write_blob(layout: &Path, digest: &Digest, bytes: &[u8]) -> Result<()> {
    std::fs::write(layout.join("blobs/sha256").join(digest.hex()), bytes).context("write a blob")
}

fn is_index(v: &Value) -> bool {
    match v["mediaType"].as_str() {
        Some(m) => m == OCI_IMAGE_INDEX_MEDIA_TYPE || m == IMAGE_MANIFEST_LIST_MEDIA_TYPE,
        None => v["manifests"].is_array(),
    }
}

/// Pulls a manifest (by the reference as given) and checks it against the digest the reference names, if any.
async fn manifest(client: &Client, r: &Reference, auth: &RegistryAuth) -> Result<(Vec<u8>, Digest)> {
    let (bytes, _) = client.pull_manifest_raw(r, auth, &ACCEPTED).await.with_context(|| format!("pull {r}"))?;
    if bytes.len() > MANIFEST_CAP {
        bail!("the manifest of {r} is over {MANIFEST_CAP} bytes: refused");
    }
    let digest = Digest::of(&bytes);
    if let Some(want) = r.digest() {
        if want != digest.as_str() {
            bail!("the registry answered {digest} for {want}: digest mismatch, refused");
        }
    }
    Ok((bytes.to_vec(), digest))
}

async fn fetch(client: &Client, r: &Reference, auth: &RegistryAuth, layout: &Path, limits: Limits) -> Result<()> {
    std::fs::create_dir_all(layout.join("blobs/sha256"))?;
    let (top, top_digest) = manifest(client, r, auth).await?;
    write_blob(layout, &top_digest, &top)?;
    let v: Value = serde_json::from_slice(&top).context("the manifest is not JSON")?;
    let top_media = v["mediaType"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| if is_index(&v) { OCI_IMAGE_INDEX_MEDIA_TYPE } else { OCI_IMAGE_MEDIA_TYPE }.to_string());
    let manifest_json = if is_index(&v) {
        let arch = examroom_images::host_arch().to_string();
        let pick = v["manifests"]
            .as_array()
            .and_then(|ms| {
                ms.iter().find(|m| m["platform"]["os"] == "linux" && m["platform"]["architecture"] == arch.as_str())
            })
            .ok_or_else(|| anyhow!("the manifest list of {r} has no linux/{arch} image: refused"))?;
        let d = pick["digest"].as_str().ok_or_else(|| anyhow!("a manifest list entry without a digest"))?;
        let d = Digest::parse(d)?;
        let (bytes, digest) = manifest(client, &r.clone_with_digest(d.to_string()), auth).await?;
        write_blob(layout, &digest, &bytes)?;
        serde_json::from_slice::<Value>(&bytes).context("the manifest is not JSON")?
    } else {
        v
    };
    let mut blobs = vec![manifest_json["config"].clone()];
    blobs.extend(manifest_json["layers"].as_array().cloned().unwrap_or_default());
    let mut total = 0u64;
    for b in blobs {
        let digest = Digest::parse(b["digest"].as_str().unwrap_or(""))?;
        let size = b["size"].as_u64().ok_or_else(|| anyhow!("a descriptor without a size"))?;
        total = total.saturating_add(size);
        if total > limits.max_bytes {
            bail!("the image is over {} bytes: refused", limits.max_bytes);
        }
        let path = layout.join("blobs/sha256").join(digest.hex());
        if path.exists() {
            continue;
        }
        let file = tokio::fs::File::create(&path).await?;
        let mut out = Capped { inner: file, left: size };
        client.pull_blob(r, digest.as_str(), &mut out).await.with_context(|| format!("pull {digest}"))?;
        tokio::io::AsyncWriteExt::flush(&mut out.inner).await?;
    }
    let mut desc = serde_json::json!({ "mediaType": top_media, "digest": top_digest.as_str(), "size": top.len() });
    if let Some(tag) = r.tag() {
        desc["annotations"] =
            serde_json::json!({ "org.opencontainers.image.ref.name": format!("{}:{tag}", r.repository()) });
    }
    let index = serde_json::json!({ "schemaVersion": 2, "manifests": [desc] });
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&index)?)?;
    std::fs::write(layout.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    Ok(())
}

/// Pulls `p.reference` into `store` and imports it.
pub async fn pull(store: ImageStore, p: Pull) -> Result<ImportReport> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let r: Reference = p.reference.parse().with_context(|| format!("the reference {:?}", p.reference))?;
    let auth = match &p.credentials {
        Some(f) => {
            let c: Credentials = serde_json::from_slice(&std::fs::read(f).with_context(|| format!("{}", f.display()))?)
                .with_context(|| format!("{}: expected {{\"username\": …, \"password\": …}}", f.display()))?;
            RegistryAuth::Basic(c.username, c.password)
        }
        None => RegistryAuth::Anonymous,
    };
    let config = ClientConfig {
        protocol: if p.insecure_http { ClientProtocol::Http } else { ClientProtocol::Https },
        read_timeout: Some(Duration::from_secs(30).min(p.timeout)),
        connect_timeout: Some(Duration::from_secs(10).min(p.timeout)),
        ..ClientConfig::default()
    };
    let client = Client::new(config);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let work = Scratch(store.dir().join("tmp").join(format!("pull-{}-{nanos}", std::process::id())));
    let layout = work.0.join("layout");
    tokio::time::timeout(p.timeout, fetch(&client, &r, &auth, &layout, p.limits))
        .await
        .map_err(|_| anyhow!("the registry did not deliver {r} within {:?}", p.timeout))??;
    let name = p.name.clone().or_else(|| r.tag().map(|t| format!("{}:{t}", r.repository())));
    let limits = p.limits;
    let report = tokio::task::spawn_blocking(move || {
        let _keep = &work;
        store.import(&layout, name.as_deref(), limits)
    })
    .await??;
    Ok(report)
}
