//! examroom's image store: OCI images as environments' read-only bases.
//!
//! An image comes in as an OCI image layout directory, an OCI archive (a tar of a layout) or a `docker save` /
//! `podman save` archive ([`ImageStore::import`]). Every blob is verified against its digest (a layer also against
//! its config's `diff_id`), and the layers are applied in order, once, into one tree per image: the store keeps
//! **flattened** images, keyed by the manifest's digest, so that an environment mounts one read-only lower layer
//! (idmapped like any `rootfs:` base) whatever the number of layers. Whiteouts (`.wh.NAME`) and opaque directories
//! (`.wh..wh..opq`) are applied while flattening, so no overlay whiteout device is ever made on the host.
//!
//! Unpacking treats the archive as hostile ([`unpack`]): every path is resolved beneath the tree's root with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, never through a link the archive made; `..`, absolute paths and
//! links that climb out of the tree are refused, as are device nodes other than the harmless ones (which are
//! skipped: an environment has its own `/dev`), set-user-ID files not owned by the image's root, and images over
//! the size or inode caps. Only `user.*` extended attributes are kept, never `user.overlay.*` (nor `trusted.*`,
//! `security.*`). An import that fails removes everything it made; two imports of the same image end with one copy.

mod digest;
mod layout;
mod names;
mod store;
pub mod unpack;
mod writer;

pub use digest::Digest;
pub use layout::host_arch;
pub use names::validate_name;
pub use store::{ImageInfo, ImageStore, ImportReport, Imported, PROFILE_SCRIPT};
pub use writer::{write_tar, ImageWriter};

/// Caps on what one import may unpack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of file content, all layers together (also the cap on any one blob read).
    pub max_bytes: u64,
    /// Entries (files, directories, links), all layers together.
    pub max_inodes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_bytes: 4 << 30, max_inodes: 1_000_000 }
    }
}

/// What can go wrong with an image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// No image of that name or digest in the store.
    #[error(
        "image {reference} is not in the image store; import it with `examroom image import FILE --name {reference}`"
    )]
    NotFound {
        /// The name or digest asked for.
        reference: String,
    },
    /// A name or digest that is not well formed.
    #[error("invalid image reference {reference:?}: {why}")]
    InvalidReference {
        /// What was given.
        reference: String,
        /// What is wrong with it.
        why: String,
    },
    /// The input was refused: it is hostile, or asks for something examroom does not do.
    #[error("image refused: {0}")]
    Refused(String),
    /// The input is not a readable image (truncated, corrupt, missing parts).
    #[error("not a valid image: {0}")]
    Corrupt(String),
    /// The image is used by a live environment.
    #[error("image {reference} is in use by {users}; end those sessions first")]
    InUse {
        /// The name or digest asked for.
        reference: String,
        /// Who uses it.
        users: String,
    },
    /// The host failed us.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

impl ImageError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ImageError {
        let context = context.into();
        move |source| ImageError::Io { context, source }
    }
}

/// Result of the image store.
pub type Result<T> = std::result::Result<T, ImageError>;

#[cfg(test)]
mod tests;
