//! Image names (`NAME:TAG`) and how they are kept on disk.

use crate::{ImageError, Result};

/// Checks a `NAME:TAG` (the tag defaults to `latest`) and returns it with its tag. NAME is 1 to 128 of
/// `a-z 0-9 . _ / -`, starting with a letter or digit, without `..` or `//`; TAG is 1 to 128 of `A-Z a-z 0-9 . _ -`.
pub fn validate_name(name: &str) -> Result<String> {
    let bad = |why: &str| ImageError::InvalidReference { reference: name.chars().take(200).collect(), why: why.into() };
    if name.starts_with("sha256:") {
        return Err(bad("a digest is not a name"));
    }
    let (repo, tag) = match name.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, t),
        _ => (name, "latest"),
    };
    let repo_ok = !repo.is_empty()
        && repo.len() <= 128
        && repo.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && repo.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._/-".contains(&b))
        && !repo.contains("..")
        && !repo.contains("//")
        && !repo.ends_with('/');
    if !repo_ok {
        return Err(bad("a name is 1 to 128 of a-z, 0-9, '.', '_', '/', '-', starting with a letter or digit"));
    }
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && !tag.starts_with(['.', '-']);
    if !tag_ok {
        return Err(bad("a tag is 1 to 128 of A-Z, a-z, 0-9, '.', '_', '-', not starting with '.' or '-'"));
    }
    Ok(format!("{repo}:{tag}"))
}

/// The file name a (valid) name is kept under: `/` becomes `+`, which a name cannot hold.
pub(crate) fn file_name(name: &str) -> String {
    name.replace('/', "+")
}

/// The name a file holds, if the file name is one.
pub(crate) fn from_file_name(file: &str) -> Option<String> {
    let name = file.replace('+', "/");
    validate_name(&name).ok().filter(|n| *n == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_tagged() {
        assert_eq!(validate_name("tools").unwrap(), "tools:latest");
        assert_eq!(validate_name("examroom/tools:1").unwrap(), "examroom/tools:1");
        assert_eq!(validate_name("localhost/tools:bookworm-1.2").unwrap(), "localhost/tools:bookworm-1.2");
        for bad in ["", ":1", "Tools:1", "../x:1", "a//b:1", "a:", "a:-x", "sha256:abc", "a b:1", "a/:1", "/a:1"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        let f = file_name("examroom/tools:1");
        assert!(!f.contains('/'));
        assert_eq!(from_file_name(&f).as_deref(), Some("examroom/tools:1"));
        assert_eq!(from_file_name("tmp.123"), None);
    }
}
