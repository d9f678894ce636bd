//! Writing images: layers from tar streams or directory trees, out as an OCI image layout, an OCI archive or a
//! `docker save` archive. Used by `examroom image pack` (the sample images of `make images`) and by tests.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use oci_spec::image::{
    ConfigBuilder, Descriptor, ImageConfigurationBuilder, ImageIndexBuilder, ImageManifestBuilder, MediaType,
    RootFsBuilder,
};

use crate::digest::Digest;
use crate::layout::host_arch;
use crate::{ImageError, Result};

/// Files of an archive: (path, bytes).
type Files = Vec<(String, Vec<u8>)>;

/// One layer: its uncompressed tar and the same gzipped.
#[derive(Clone)]
struct Layer {
    tar: Vec<u8>,
    gz: Vec<u8>,
}

/// An image being written.
#[derive(Clone, Default)]
pub struct ImageWriter {
    layers: Vec<Layer>,
    /// OCI layers zstd-compressed (`tar+zstd`) rather than gzipped.
    zstd: bool,
    env: Vec<String>,
    working_dir: Option<String>,
    user: Option<String>,
}

fn oci(d: &Digest) -> oci_spec::image::Digest {
    d.as_str().parse().expect("a sha256 digest")
}

fn err(e: impl std::fmt::Display) -> ImageError {
    ImageError::Corrupt(format!("writing an image: {e}"))
}

impl ImageWriter {
    /// An image with no layer.
    pub fn new() -> Self {
        ImageWriter::default()
    }

    /// Adds a layer from an uncompressed tar.
    pub fn layer(mut self, tar: Vec<u8>) -> Self {
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).expect("in memory");
        let gz = gz.finish().expect("in memory");
        self.layers.push(Layer { tar, gz });
        self
    }

    /// Writes the OCI layers zstd-compressed (`tar+zstd`) instead of gzipped.
    pub fn zstd(mut self) -> Self {
        self.zstd = true;
        self
    }

    /// Adds `env` (`KEY=VALUE`) to the config.
    pub fn env(mut self, kv: &str) -> Self {
        self.env.push(kv.to_string());
        self
    }

    /// Sets the config's `WorkingDir`.
    pub fn working_dir(mut self, dir: &str) -> Self {
        self.working_dir = Some(dir.to_string());
        self
    }

    /// Sets the config's `User`.
    pub fn user(mut self, user: &str) -> Self {
        self.user = Some(user.to_string());
        self
    }

    /// Adds the tree at `dir` as `layers` layers (at least one): the first holds every directory and symlink and the
    /// files up to its share of the bytes, the others the rest of the files, in path order. Owners, modes and times
    /// are kept; device nodes, sockets and anything below `dev/` are left out.
    pub fn layers_from_dir(mut self, dir: &Path, layers: usize) -> Result<Self> {
        let mut entries: Vec<(PathBuf, std::fs::Metadata)> = Vec::new();
        walk(dir, Path::new(""), &mut entries)?;
        let files: u64 = entries.iter().filter(|(_, m)| m.is_file()).map(|(_, m)| m.len()).sum();
        let share = files / layers.max(1) as u64 + 1;
        let mut builders: Vec<tar::Builder<Vec<u8>>> =
            (0..layers.max(1)).map(|_| tar::Builder::new(Vec::new())).collect();
        for b in &mut builders {
            b.follow_symlinks(false);
            b.mode(tar::HeaderMode::Complete);
        }
        let mut acc = 0u64;
        for (rel, md) in &entries {
            let i = if md.is_file() {
                let i = ((acc / share) as usize).min(builders.len() - 1);
                acc += md.len();
                i
            } else {
                0
            };
            builders[i].append_path_with_name(dir.join(rel), rel).map_err(err)?;
        }
        for b in builders {
            self = self.layer(b.into_inner().map_err(err)?);
        }
        Ok(self)
    }

    fn config(&self) -> Result<(Vec<u8>, Digest)> {
        let diff_ids: Vec<String> = self.layers.iter().map(|l| Digest::of(&l.tar).to_string()).collect();
        let mut cb = ConfigBuilder::default().env(self.env.clone());
        if let Some(w) = &self.working_dir {
            cb = cb.working_dir(w.clone());
        }
        if let Some(u) = &self.user {
            cb = cb.user(u.clone());
        }
        let config = ImageConfigurationBuilder::default()
            .architecture(host_arch())
            .os(oci_spec::image::Os::Linux)
            .config(cb.build().map_err(err)?)
            .rootfs(RootFsBuilder::default().typ("layers").diff_ids(diff_ids).build().map_err(err)?)
            .build()
            .map_err(err)?;
        let bytes = config.to_string().map_err(err)?.into_bytes();
        let d = Digest::of(&bytes);
        Ok((bytes, d))
    }

    /// The blobs of an OCI layout (path, bytes), its manifest's digest and its `index.json`.
    fn oci_files(&self, name: Option<&str>) -> Result<(Files, Digest)> {
        let mut files = Vec::new();
        let (config, cd) = self.config()?;
        files.push((format!("blobs/sha256/{}", cd.hex()), config.clone()));
        let mut layers = Vec::new();
        for l in &self.layers {
            let (media, blob) = if self.zstd {
                (MediaType::ImageLayerZstd, zstd::encode_all(&l.tar[..], 3).map_err(err)?)
            } else {
                (MediaType::ImageLayerGzip, l.gz.clone())
            };
            let d = Digest::of(&blob);
            layers.push(Descriptor::new(media, blob.len() as u64, oci(&d)));
            files.push((format!("blobs/sha256/{}", d.hex()), blob));
        }
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(Descriptor::new(MediaType::ImageConfig, config.len() as u64, oci(&cd)))
            .layers(layers)
            .build()
            .map_err(err)?;
        let manifest = manifest.to_string().map_err(err)?.into_bytes();
        let md = Digest::of(&manifest);
        files.push((format!("blobs/sha256/{}", md.hex()), manifest.clone()));
        let mut desc = Descriptor::new(MediaType::ImageManifest, manifest.len() as u64, oci(&md));
        if let Some(n) = name {
            let mut a = std::collections::HashMap::new();
            a.insert("org.opencontainers.image.ref.name".to_string(), n.to_string());
            desc.set_annotations(Some(a));
        }
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(vec![desc])
            .build()
            .map_err(err)?;
        files.push(("index.json".into(), index.to_string().map_err(err)?.into_bytes()));
        files.push(("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()));
        Ok((files, md))
    }

    /// Writes an OCI image layout into `dir` (made where missing). Returns the manifest's digest.
    pub fn write_oci_layout(&self, dir: &Path, name: Option<&str>) -> Result<Digest> {
        let (files, d) = self.oci_files(name)?;
        for (rel, bytes) in files {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().expect("a parent")).map_err(err)?;
            std::fs::write(&p, bytes).map_err(err)?;
        }
        Ok(d)
    }

    /// Writes an OCI archive (a tar of the layout). Returns the manifest's digest.
    pub fn write_oci_archive(&self, file: &Path, name: Option<&str>) -> Result<Digest> {
        let (files, d) = self.oci_files(name)?;
        write_tar(file, &files)?;
        Ok(d)
    }

    /// Writes a `docker save` archive (legacy layout: `<n>/layer.tar`, `<config hex>.json`, `manifest.json`).
    pub fn write_docker_archive(&self, file: &Path, name: Option<&str>) -> Result<()> {
        let (config, cd) = self.config()?;
        let mut files = vec![(format!("{}.json", cd.hex()), config)];
        let mut paths = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            let p = format!("{i:03}/layer.tar");
            files.push((p.clone(), l.tar.clone()));
            paths.push(p);
        }
        let manifest = serde_json::json!([{
            "Config": format!("{}.json", cd.hex()),
            "RepoTags": name.map(|n| vec![n.to_string()]),
            "Layers": paths,
        }]);
        files.push(("manifest.json".into(), serde_json::to_vec(&manifest).map_err(err)?));
        write_tar(file, &files)
    }
}

fn walk(root: &Path, rel: &Path, out: &mut Vec<(PathBuf, std::fs::Metadata)>) -> Result<()> {
    let mut names: Vec<_> = std::fs::read_dir(root.join(rel)).map_err(err)?.flatten().map(|e| e.file_name()).collect();
    names.sort();
    for n in names {
        let r = rel.join(&n);
        let md = std::fs::symlink_metadata(root.join(&r)).map_err(err)?;
        let ft = md.file_type();
        if ft.is_dir() {
            out.push((r.clone(), md));
            if r != Path::new("dev") && r != Path::new("proc") && r != Path::new("sys") {
                walk(root, &r, out)?;
            }
        } else if ft.is_file() || ft.is_symlink() {
            out.push((r, md));
        }
    }
    Ok(())
}

/// A tar of `files` (regular files, mode 0644, root-owned), with their directories.
pub fn write_tar(file: &Path, files: &[(String, Vec<u8>)]) -> Result<()> {
    let f = std::fs::File::create(file).map_err(err)?;
    let mut b = tar::Builder::new(std::io::BufWriter::new(f));
    let mut dirs = std::collections::BTreeSet::new();
    for (rel, bytes) in files {
        let mut p = Path::new(rel).parent();
        let mut chain = Vec::new();
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
            chain.push(d.to_path_buf());
            p = d.parent();
        }
        for d in chain.into_iter().rev() {
            if dirs.insert(d.clone()) {
                let mut h = tar::Header::new_ustar();
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_uid(0);
                h.set_gid(0);
                h.set_mtime(0);
                h.set_size(0);
                b.append_data(&mut h, &d, std::io::empty()).map_err(err)?;
            }
        }
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(bytes.len() as u64);
        b.append_data(&mut h, rel, &bytes[..]).map_err(err)?;
    }
    b.into_inner().map_err(err)?.flush().map_err(err)
}
