//! Identity: who is asking, taken from a signed token and nothing else.
//!
//! The contract's "Identity" section, as code:
//!
//! - **Tokens.** A JWT whose claims are `sub` (the [`UserId`]), `exp` (required, seconds since the epoch) and `role`
//!   (`candidate` or `proctor`; missing means `candidate`). It is signed with HS256 and a server secret, or with RS256
//!   when an RS256 public key is configured. [`TokenKeys`] holds the keys, [`TokenKeys::verify`] turns a token into an
//!   [`Identity`] and [`TokenKeys::mint`] makes one (for `examroom token` and tests).
//! - **Where a token comes from.** Programmatic clients send `Authorization: Bearer <JWT>` ([`bearer_token`]);
//!   browsers send the `examroom_session` cookie ([`cookie_token`], [`COOKIE`]) that `POST /api/v1/auth/session`
//!   sets ([`session_cookie`]) and `DELETE` clears ([`clear_cookie`]). [`Credential::from_headers`] picks one and
//!   records which, because cookie requests need the CSRF checks ([`csrf_allows`], [`check_origin`]).
//! - **Browser sign-ins.** The cookie does not hold the token: it holds a random sign-in id ([`new_sign_in_id`]),
//!   and the store keeps its hash ([`sign_in_id_hash`]) with the token's user, role and `exp` and the
//!   [`TokenKeys::fingerprint`] of the keys that verified it. Signing out ends the sign-in in the store, so the old
//!   cookie is refused from then on, across restarts, while the token itself (the operator's) stays valid.
//! - **Identity is never inferred.** There is no default user, no identity from an address or a query string: no
//!   credential is [`AuthError::Missing`], and every [`AuthError`] is answered with the same 401 `unauthenticated`
//!   ([`DomainError::Unauthenticated`]). The variants differ only so that logs say why.
//!
//! # What is refused
//!
//! [`TokenKeys::verify`] refuses, before anything is trusted: tokens longer than [`MAX_TOKEN_LEN`]; anything that is
//! not three base64url parts; a header with `crit`; any `alg` but `HS256`, or `RS256` when an RS256 key is
//! configured (so `none`, `HS384`, `HS512`, `RS256` without a key, …); a bad signature. The algorithm picks the
//! key: HS256 only ever uses the HS256 secret and RS256 only ever the RS256 public key, so a token "signed" with HMAC
//! and the public key as the secret (the classic key-confusion attack) is just a bad signature. After the signature:
//! a missing or unparsable `exp`, an `exp` that is not after `now`, a `sub` that is not a [`UserId`] and a `role`
//! that is neither `candidate` nor `proctor`.
//!
//! `exp` is checked here against the `now_unix` the caller passes, with no leeway, rather than by `jsonwebtoken`
//! (whose check reads the system clock); `jsonwebtoken` still insists that `exp` is present. `nbf`, `aud`, `iss`,
//! `kid`, `jku`, `x5u` and other claims and header fields are ignored: no key is ever fetched.
//!
//! # The secret
//!
//! [`TokenKeys::load`] takes the HS256 secret from `EXAMROOM_TOKEN_SECRET` when it is set and not empty (at least 32
//! bytes, used as they are), or else from `<data dir>/token-secret`. On first run that file is made from 32 bytes of
//! the operating system's random generator, written as base64 (44 characters and a newline) with mode 0600, and
//! published atomically (a private temporary file, then a hard link that fails if the name exists), so two servers
//! starting at once end up with the same secret and nobody ever reads a half-written one. The secret is the file's
//! text without surrounding whitespace, exactly as if it had been put in `EXAMROOM_TOKEN_SECRET`. A secret file that
//! the group or others may read is refused.

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use examroom_core::{DomainError, Role, UserId};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::rngs::OsRng;
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// The browser cookie that carries the session token.
pub const COOKIE: &str = "examroom_session";

/// The header that a cookie-authenticated request that changes state must carry, with the value `1`. A cross-site
/// form cannot send it.
pub const CSRF_HEADER: &str = "x-examroom";

/// The longest token [`TokenKeys::verify`] looks at, in bytes (8 KiB). Longer ones are refused before parsing.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The shortest HS256 secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// The name of the secret file in the data directory.
pub const SECRET_FILE: &str = "token-secret";

/// How many random bytes a new secret file is made from.
const NEW_SECRET_BYTES: usize = 32;

/// Who is asking: the verified `sub` and `role` of a token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    /// The person.
    pub user: UserId,
    /// What they may do.
    pub role: Role,
}

/// A token's claims, as signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id; must parse as a [`UserId`].
    pub sub: String,
    /// When the token stops being valid, in seconds since the Unix epoch. Required.
    pub exp: u64,
    /// The role; a missing claim is [`Role::Candidate`], an unknown one is refused.
    #[serde(default)]
    pub role: Role,
    /// When the token was issued, in seconds since the Unix epoch. Informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Set only in a port grant (see [`TokenKeys::mint_port_grant`]): such a token opens one port of one session on
    /// the ports origin, and is never a sign-in token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_grant: Option<PortGrant>,
}

/// What a port grant opens: one port of one session, for the session's owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortGrant {
    /// The session id.
    pub sid: String,
    /// The port inside the environment.
    pub port: u16,
}

/// Why a request has no identity.
///
/// The messages are for logs and never contain the token. Every variant is answered with the same 401
/// `unauthenticated` (see the `From<AuthError> for DomainError` conversion) so that a caller learns nothing about
/// which check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The request carried no credential at all.
    #[error("no credential: neither an Authorization: Bearer header nor the session cookie")]
    Missing,
    /// The credential is not a well-formed token (or the Authorization header is not `Bearer`).
    #[error("malformed credential: {0}")]
    Malformed(&'static str),
    /// The token is longer than [`MAX_TOKEN_LEN`].
    #[error("token too long: {len} bytes, at most {max} are accepted", max = MAX_TOKEN_LEN)]
    TooLong {
        /// The token's length in bytes.
        len: usize,
    },
    /// The signature does not match.
    #[error("bad token signature")]
    BadSignature,
    /// The token's `exp` is not after the current time.
    #[error("token expired at {exp} (now {now})")]
    Expired {
        /// The token's `exp`.
        exp: u64,
        /// The time it was checked at.
        now: u64,
    },
    /// The header's `alg` is not one this server accepts with the keys it has.
    #[error("token algorithm refused: {0}")]
    AlgorithmRefused(String),
    /// The claims are missing, of the wrong type, or not valid values.
    #[error("invalid token claims: {0}")]
    InvalidClaims(String),
}

impl From<AuthError> for DomainError {
    /// Every authentication failure is the same `401 unauthenticated` to the caller.
    fn from(_: AuthError) -> Self {
        DomainError::Unauthenticated
    }
}

/// Why [`TokenKeys::load`] could not produce keys. These are start-up errors for the operator, so they name paths.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// `EXAMROOM_TOKEN_SECRET` is set but too short.
    #[error(
        "EXAMROOM_TOKEN_SECRET is {len} bytes long; it must be at least {min} bytes (for example the output of \
         `head -c 32 /dev/urandom | base64`), or unset to use the secret file in the data directory",
        min = MIN_SECRET_LEN
    )]
    ShortEnvSecret {
        /// Its length in bytes.
        len: usize,
    },
    /// The secret file holds fewer than [`MIN_SECRET_LEN`] bytes.
    #[error(
        "the token secret in {path} is {len} bytes long; it must be at least {min} bytes (delete the file to have \
         a new one made, which signs everyone out)",
        min = MIN_SECRET_LEN
    )]
    ShortSecretFile {
        /// The file.
        path: PathBuf,
        /// The secret's length in bytes.
        len: usize,
    },
    /// The secret file may be read by the group or by others, or is not a regular file.
    #[error("the token secret file {path} has mode {mode:o} or is not a regular file; run `chmod 600 {path}`")]
    InsecureSecretFile {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Reading or writing a key file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, for example "reading".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The RS256 public key file is not a usable RSA public key.
    #[error("the RS256 public key in {path} is not usable: {reason}")]
    BadPublicKey {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Where the HS256 secret of a [`TokenKeys`] came from, for a start-up log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `EXAMROOM_TOKEN_SECRET`.
    Env,
    /// The secret file in the data directory.
    File {
        /// The file.
        path: PathBuf,
        /// Whether this call made it.
        created: bool,
    },
    /// [`TokenKeys::from_secret`].
    Given,
}

/// The keys that tokens are verified (and minted) with: the HS256 secret and, optionally, an RS256 public key.
///
/// `Debug` never shows key material.
#[derive(Clone)]
pub struct TokenKeys {
    hs256_encoding: EncodingKey,
    hs256_decoding: DecodingKey,
    rs256: Option<DecodingKey>,
    source: SecretSource,
    /// A hash of the HS256 secret and the RS256 public key (see [`TokenKeys::fingerprint`]).
    fingerprint: String,
}

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKeys")
            .field("hs256", &"<secret>")
            .field("rs256", &self.rs256.is_some())
            .field("source", &self.source)
            .finish()
    }
}

/// The parts of a JOSE header looked at before the signature is checked.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

impl TokenKeys {
    /// Loads the keys for a server or for `examroom token`.
    ///
    /// The HS256 secret is `env_secret` (the value of `EXAMROOM_TOKEN_SECRET`) when it is `Some` and not empty; it
    /// must then be at least [`MIN_SECRET_LEN`] bytes. Otherwise it is the text of `<data_dir>/token-secret`,
    /// trimmed, which is created on first run (see the module documentation); `data_dir` is created if missing.
    /// `rs256_public_pem` optionally names a PEM file holding an RSA public key (`BEGIN PUBLIC KEY` or
    /// `BEGIN RSA PUBLIC KEY`, 2048 to 8192 bits); tokens declaring RS256 are refused when it is `None`.
    pub fn load(data_dir: &Path, env_secret: Option<&str>, rs256_public_pem: Option<&Path>) -> Result<Self, KeyError> {
        let (secret, source) = match env_secret.filter(|s| !s.is_empty()) {
            Some(s) => {
                if s.len() < MIN_SECRET_LEN {
                    return Err(KeyError::ShortEnvSecret { len: s.len() });
                }
                (s.as_bytes().to_vec(), SecretSource::Env)
            }
            None => {
                let (secret, path, created) = load_or_create_secret_file(data_dir)?;
                (secret, SecretSource::File { path, created })
            }
        };
        let mut keys = Self::from_secret(&secret);
        keys.source = source;
        if let Some(path) = rs256_public_pem {
            let (key, pem) = load_rs256_public_key(path)?;
            keys.rs256 = Some(key);
            keys.fingerprint = fingerprint(&secret, Some(pem.as_bytes()));
        }
        Ok(keys)
    }

    /// Keys with this HS256 secret and no RS256 key, for tests and tools. No length check: use [`TokenKeys::load`]
    /// for anything that serves requests.
    pub fn from_secret(secret: &[u8]) -> Self {
        Self {
            hs256_encoding: EncodingKey::from_secret(secret),
            hs256_decoding: DecodingKey::from_secret(secret),
            rs256: None,
            source: SecretSource::Given,
            fingerprint: fingerprint(secret, None),
        }
    }

    /// These keys plus an RS256 public key given as PEM text (see [`TokenKeys::load`] for the accepted forms).
    pub fn with_rs256_public_pem(mut self, pem: &str) -> Result<Self, String> {
        self.rs256 = Some(rs256_key_from_pem(pem)?);
        // The HS256 secret is not kept; chain its fingerprint with the public key's.
        self.fingerprint = fingerprint(self.fingerprint.as_bytes(), Some(pem.as_bytes()));
        Ok(self)
    }

    /// A hash of these keys (the HS256 secret and the RS256 public key), 32 hex digits. A browser sign-in records
    /// the fingerprint of the keys that verified its token and is valid only under the same keys, so replacing the
    /// secret or the public key signs every browser out. It reveals nothing usable about the secret.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Where the HS256 secret came from.
    pub fn secret_source(&self) -> &SecretSource {
        &self.source
    }

    /// Whether tokens signed with RS256 are accepted.
    pub fn has_rs256(&self) -> bool {
        self.rs256.is_some()
    }

    /// Checks a token at time `now_unix` (seconds since the epoch) and returns who it identifies.
    ///
    /// See the module documentation for every refusal. The signature is checked before any claim is looked at.
    pub fn verify(&self, token: &str, now_unix: u64) -> Result<Identity, AuthError> {
        let claims = self.signed_claims(token)?;
        if claims.port_grant.is_some() {
            return Err(AuthError::InvalidClaims("a port grant is not a sign-in token".into()));
        }
        if claims.exp <= now_unix {
            return Err(AuthError::Expired { exp: claims.exp, now: now_unix });
        }
        let user = UserId::parse(&claims.sub)
            .map_err(|e| AuthError::InvalidClaims(format!("sub is not a user id: {}", sanitize(&e.to_string()))))?;
        Ok(Identity { user, role: claims.role })
    }

    /// The `exp` of a token whose signature and claims check out with these keys, whatever the time; `None` for
    /// any token [`TokenKeys::verify`] would refuse for another reason than expiry. For the session cookie's
    /// lifetime after a successful [`TokenKeys::verify`].
    pub fn expiry(&self, token: &str) -> Option<u64> {
        let claims = self.signed_claims(token).ok()?;
        UserId::parse(&claims.sub).ok()?;
        Some(claims.exp)
    }

    /// Every check but the clock and the `sub` format: size, shape, header, algorithm, signature, claim types.
    fn signed_claims(&self, token: &str) -> Result<Claims, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::TooLong { len: token.len() });
        }
        if !token.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
            return Err(AuthError::Malformed("a token has only base64url characters and dots"));
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed("a token has exactly three parts"));
        };
        let header_json =
            URL_SAFE_NO_PAD.decode(header_b64).map_err(|_| AuthError::Malformed("the header is not base64url"))?;
        let header: RawHeader = serde_json::from_slice(&header_json)
            .map_err(|_| AuthError::Malformed("the header is not a JOSE header"))?;
        if header.crit.is_some() {
            return Err(AuthError::Malformed("critical header extensions are not supported"));
        }
        // The algorithm picks the key, and each key serves exactly one algorithm.
        let (alg, key) = match (header.alg.as_str(), &self.rs256) {
            ("HS256", _) => (Algorithm::HS256, &self.hs256_decoding),
            ("RS256", Some(rsa)) => (Algorithm::RS256, rsa),
            ("RS256", None) => {
                return Err(AuthError::AlgorithmRefused("RS256 but no RS256 public key is configured".to_owned()))
            }
            (other, _) => return Err(AuthError::AlgorithmRefused(sanitize(other))),
        };

        let mut validation = Validation::new(alg);
        validation.algorithms = vec![alg];
        validation.required_spec_claims = HashSet::from(["exp".to_owned()]);
        validation.leeway = 0;
        // `exp` is compared with the caller's `now_unix` in `verify`; the library's check would read the system
        // clock instead.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;

        jsonwebtoken::decode::<Claims>(token, key, &validation).map(|data| data.claims).map_err(map_jwt_error)
    }

    /// Makes an HS256 token for `user` with `role`, valid from `now_unix` for `ttl` (whole seconds).
    ///
    /// Signing with HMAC cannot fail; should the library ever report an error, the result is an empty string,
    /// which [`TokenKeys::verify`] refuses.
    pub fn mint(&self, user: &UserId, role: Role, ttl: Duration, now_unix: u64) -> String {
        let claims = Claims {
            sub: user.as_str().to_owned(),
            exp: now_unix.saturating_add(ttl.as_secs()),
            role,
            iat: Some(now_unix),
            port_grant: None,
        };
        self.sign(&claims)
    }

    fn sign(&self, claims: &Claims) -> String {
        match jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.hs256_encoding) {
            Ok(token) => token,
            Err(e) => {
                tracing::error!(error = %e, "minting a token failed");
                String::new()
            }
        }
    }

    /// Makes a port grant: an HS256 token that lets `user`'s browser into port `port` of session `sid` on the ports
    /// origin, valid for `ttl`. [`TokenKeys::verify`] refuses it as a sign-in token.
    pub fn mint_port_grant(&self, user: &UserId, grant: PortGrant, ttl: Duration, now_unix: u64) -> String {
        let claims = Claims {
            sub: user.as_str().to_owned(),
            exp: now_unix.saturating_add(ttl.as_secs()),
            role: Role::Candidate,
            iat: Some(now_unix),
            port_grant: Some(grant),
        };
        self.sign(&claims)
    }

    /// Checks a port grant at `now_unix`: whose it is and what it opens. Only HS256 grants minted by this server
    /// pass (a sign-in token is not a grant).
    pub fn verify_port_grant(&self, token: &str, now_unix: u64) -> Result<(UserId, PortGrant), AuthError> {
        let claims = self.signed_claims(token)?;
        let Some(grant) = claims.port_grant else {
            return Err(AuthError::InvalidClaims("not a port grant".into()));
        };
        // Grants are minted here, with the server's own secret: an RS256 token (an outside issuer's) is not one.
        let hs256 = token
            .split('.')
            .next()
            .and_then(|h| URL_SAFE_NO_PAD.decode(h).ok())
            .and_then(|h| serde_json::from_slice::<RawHeader>(&h).ok())
            .is_some_and(|h| h.alg == "HS256");
        if !hs256 {
            return Err(AuthError::AlgorithmRefused("a port grant is HS256".into()));
        }
        if claims.exp <= now_unix {
            return Err(AuthError::Expired { exp: claims.exp, now: now_unix });
        }
        let user = UserId::parse(&claims.sub)
            .map_err(|e| AuthError::InvalidClaims(format!("sub is not a user id: {}", sanitize(&e.to_string()))))?;
        Ok((user, grant))
    }
}

/// Turns a `jsonwebtoken` error into an [`AuthError`].
fn map_jwt_error(e: jsonwebtoken::errors::Error) -> AuthError {
    match e.kind() {
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::MissingAlgorithm => {
            AuthError::AlgorithmRefused("the algorithm does not match the key".to_owned())
        }
        ErrorKind::ExpiredSignature => AuthError::Expired { exp: 0, now: 0 },
        ErrorKind::MissingRequiredClaim(claim) => AuthError::InvalidClaims(format!("{} is required", sanitize(claim))),
        ErrorKind::Json(e) => AuthError::InvalidClaims(sanitize(&e.to_string())),
        ErrorKind::InvalidIssuer
        | ErrorKind::InvalidAudience
        | ErrorKind::InvalidSubject
        | ErrorKind::ImmatureSignature => AuthError::InvalidClaims(sanitize(&e.to_string())),
        ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => {
            AuthError::Malformed("a part of the token does not decode")
        }
        // Key problems (ours, not the caller's) and anything added later: the token is not accepted.
        _ => AuthError::BadSignature,
    }
}

/// Makes caller-controlled text safe for a log line: escapes control characters and keeps it short.
fn sanitize(s: &str) -> String {
    const MAX: usize = 120;
    let mut out: String = s.chars().take(MAX).flat_map(char::escape_debug).collect();
    if s.chars().count() > MAX {
        out.push('…');
    }
    out
}

/// Reads `<data_dir>/token-secret`, making it first if it does not exist. Returns the secret, the path and whether
/// this call made the file.
fn load_or_create_secret_file(data_dir: &Path) -> Result<(Vec<u8>, PathBuf, bool), KeyError> {
    let path = data_dir.join(SECRET_FILE);
    match read_secret_file(&path) {
        Ok(secret) => return Ok((secret, path, false)),
        Err(KeyError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    fs::create_dir_all(data_dir).map_err(|source| KeyError::Io {
        action: "creating the data directory",
        path: data_dir.to_owned(),
        source,
    })?;
    let created = create_secret_file(data_dir, &path)?;
    let secret = read_secret_file(&path)?;
    Ok((secret, path, created))
}

/// Reads and checks an existing secret file: a regular file, not readable by group or others, at least
/// [`MIN_SECRET_LEN`] bytes once trimmed.
fn read_secret_file(path: &Path) -> Result<Vec<u8>, KeyError> {
    let io_err = |source| KeyError::Io { action: "reading the token secret", path: path.to_owned(), source };
    let mut file = fs::File::open(path).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    let mode = meta.permissions().mode() & 0o7777;
    if !meta.is_file() || mode & 0o077 != 0 {
        return Err(KeyError::InsecureSecretFile { path: path.to_owned(), mode });
    }
    let mut text = Vec::new();
    // A secret is short; reading a little more than any sane one is enough to notice a wrong file.
    Read::by_ref(&mut file).take(64 * 1024).read_to_end(&mut text).map_err(io_err)?;
    let secret = text.trim_ascii().to_vec();
    if secret.len() < MIN_SECRET_LEN {
        return Err(KeyError::ShortSecretFile { path: path.to_owned(), len: secret.len() });
    }
    Ok(secret)
}

/// Publishes a new secret file at `path` unless one appears first. Returns whether this call published it.
///
/// The secret is written to a private temporary file (`O_EXCL`, mode 0600) and synced, then hard-linked to `path`;
/// the link fails if `path` exists, so exactly one of several concurrent callers wins and every reader sees a
/// complete file.
fn create_secret_file(data_dir: &Path, path: &Path) -> Result<bool, KeyError> {
    let mut raw = [0u8; NEW_SECRET_BYTES];
    OsRng.try_fill_bytes(&mut raw).map_err(|e| KeyError::Io {
        action: "getting random bytes for the token secret",
        path: path.to_owned(),
        source: io::Error::other(e.to_string()),
    })?;
    let mut text = STANDARD.encode(raw);
    text.push('\n');

    let mut tag = [0u8; 8];
    OsRng.fill_bytes(&mut tag);
    let tmp = data_dir.join(format!(".{SECRET_FILE}.{}.{:016x}.tmp", std::process::id(), u64::from_le_bytes(tag)));
    let write = || -> io::Result<()> {
        let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()
    };
    let result =
        write().map_err(|source| KeyError::Io { action: "writing a new token secret", path: tmp.clone(), source });
    let result = result.and_then(|()| match fs::hard_link(&tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(source) => Err(KeyError::Io { action: "publishing the new token secret", path: path.to_owned(), source }),
    });
    // Best effort: the temporary name is private and harmless if it lingers.
    let _ = fs::remove_file(&tmp);
    if let Ok(true) = result {
        // Make the new name durable; failure here only risks a new secret after a crash.
        if let Ok(dir) = fs::File::open(data_dir) {
            let _ = dir.sync_all();
        }
    }
    result
}

/// Reads an RS256 public key from a PEM file.
fn load_rs256_public_key(path: &Path) -> Result<(DecodingKey, String), KeyError> {
    let text = fs::read_to_string(path).map_err(|source| KeyError::Io {
        action: "reading the RS256 public key",
        path: path.to_owned(),
        source,
    })?;
    let key = rs256_key_from_pem(&text).map_err(|reason| KeyError::BadPublicKey { path: path.to_owned(), reason })?;
    Ok((key, text))
}

/// See [`TokenKeys::fingerprint`]: SHA-256 over a label, the secret's length and bytes, and the public key's PEM.
fn fingerprint(secret: &[u8], rs256_pem: Option<&[u8]>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"examroom token keys v1\0");
    h.update((secret.len() as u64).to_be_bytes());
    h.update(secret);
    if let Some(pem) = rs256_pem {
        h.update(b"rs256\0");
        h.update(pem);
    }
    hex(&h.finalize()[..16])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---- Browser sign-ins ----

/// How many random bytes a sign-in id is made of (256 bits).
const SIGN_IN_ID_BYTES: usize = 32;

/// The length of a sign-in id as the cookie holds it (base64url without padding).
pub const SIGN_IN_ID_LEN: usize = 43;

/// A new browser sign-in id: 32 bytes of the operating system's random generator, base64url without padding. It is
/// the value of the `examroom_session` cookie; the store keeps only [`sign_in_id_hash`] of it.
pub fn new_sign_in_id() -> String {
    let mut bytes = [0u8; SIGN_IN_ID_BYTES];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether a cookie value has the form of a sign-in id (anything else is refused without a lookup).
pub fn is_sign_in_id(value: &str) -> bool {
    value.len() == SIGN_IN_ID_LEN && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// The SHA-256 of a sign-in id, in hex: how the store knows it. Reading the database gives no usable cookie.
pub fn sign_in_id_hash(id: &str) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(id.as_bytes()))
}

/// Parses an RSA public key in PEM (`PUBLIC KEY`, that is SubjectPublicKeyInfo, or `RSA PUBLIC KEY`, that is
/// PKCS#1) and checks its size.
fn rs256_key_from_pem(text: &str) -> Result<DecodingKey, String> {
    let (label, der) = pem_decode(text)?;
    let pkcs1 = match label.as_str() {
        "PUBLIC KEY" => spki_rsa_public_key(&der)?,
        "RSA PUBLIC KEY" => der,
        l if l.contains("PRIVATE KEY") => {
            return Err("this is a private key; configure the public key only (openssl rsa -pubout)".to_owned())
        }
        l => return Err(format!("expected BEGIN PUBLIC KEY or BEGIN RSA PUBLIC KEY, found BEGIN {}", sanitize(l))),
    };
    check_rsa_public_key(&pkcs1)?;
    Ok(DecodingKey::from_rsa_der(&pkcs1))
}

/// The label and the decoded body of the first PEM block in `text`.
fn pem_decode(text: &str) -> Result<(String, Vec<u8>), String> {
    let mut lines = text.lines().map(str::trim);
    let label = lines
        .by_ref()
        .find_map(|l| l.strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----")))
        .ok_or("no -----BEGIN line")?
        .to_owned();
    let end = format!("-----END {label}-----");
    let mut body = String::new();
    let mut ended = false;
    for line in lines {
        if line == end {
            ended = true;
            break;
        }
        if line.contains(':') {
            return Err("encrypted or annotated PEM is not supported".to_owned());
        }
        body.push_str(line);
    }
    if !ended {
        return Err(format!("no {end} line"));
    }
    let der = STANDARD.decode(body.as_bytes()).map_err(|e| format!("the PEM body is not base64: {e}"))?;
    Ok((label, der))
}

/// One DER element: its tag, its contents and what follows it.
fn der_next(input: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let err = || "truncated or invalid DER".to_owned();
    let (&tag, rest) = input.split_first().ok_or_else(err)?;
    let (&first, mut rest) = rest.split_first().ok_or_else(err)?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(err());
        }
        let (bytes, after) = rest.split_at(n);
        rest = after;
        bytes.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    if rest.len() < len {
        return Err(err());
    }
    let (contents, after) = rest.split_at(len);
    Ok((tag, contents, after))
}

/// The PKCS#1 `RSAPublicKey` inside an RSA SubjectPublicKeyInfo.
fn spki_rsa_public_key(der: &[u8]) -> Result<Vec<u8>, String> {
    const SEQUENCE: u8 = 0x30;
    const OID: u8 = 0x06;
    const BIT_STRING: u8 = 0x03;
    /// 1.2.840.113549.1.1.1, rsaEncryption.
    const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

    let (tag, spki, trailing) = der_next(der)?;
    if tag != SEQUENCE || !trailing.is_empty() {
        return Err("not a SubjectPublicKeyInfo".to_owned());
    }
    let (tag, alg_id, rest) = der_next(spki)?;
    if tag != SEQUENCE {
        return Err("not a SubjectPublicKeyInfo".to_owned());
    }
    let (tag, oid, _params) = der_next(alg_id)?;
    if tag != OID || oid != RSA_ENCRYPTION {
        return Err("not an RSA key (only RSA keys can verify RS256)".to_owned());
    }
    let (tag, bits, rest) = der_next(rest)?;
    if tag != BIT_STRING || !rest.is_empty() {
        return Err("not a SubjectPublicKeyInfo".to_owned());
    }
    match bits.split_first() {
        Some((0, key)) => Ok(key.to_vec()),
        _ => Err("not a SubjectPublicKeyInfo".to_owned()),
    }
}

/// Checks that `der` is a PKCS#1 `RSAPublicKey` whose modulus has 2048 to 8192 bits (what RS256 verification
/// accepts) and whose exponent is odd and at least 3.
fn check_rsa_public_key(der: &[u8]) -> Result<(), String> {
    const SEQUENCE: u8 = 0x30;
    const INTEGER: u8 = 0x02;
    let bad = || "not an RSA public key".to_owned();
    let (tag, seq, trailing) = der_next(der)?;
    if tag != SEQUENCE || !trailing.is_empty() {
        return Err(bad());
    }
    let (tag, n, rest) = der_next(seq)?;
    let (tag2, e, rest) = der_next(rest)?;
    if tag != INTEGER || tag2 != INTEGER || !rest.is_empty() {
        return Err(bad());
    }
    let strip = |x: &[u8]| -> Vec<u8> { x.iter().copied().skip_while(|&b| b == 0).collect() };
    let n = strip(n);
    let e = strip(e);
    let bits = match n.first() {
        Some(&top) => (n.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
        None => 0,
    };
    if !(2048..=8192).contains(&bits) {
        return Err(format!("the key has {bits} bits; RS256 keys must have 2048 to 8192"));
    }
    let odd = e.last().is_some_and(|b| b & 1 == 1);
    if !odd || e.as_slice() == [1] || e.len() > 4 {
        return Err("the public exponent is not usable".to_owned());
    }
    Ok(())
}

/// The `Set-Cookie` value that stores `token` (a sign-in id, see [`new_sign_in_id`]) in the browser until
/// `exp_unix`: `examroom_session=<token>; HttpOnly; SameSite=Strict; Path=/; Max-Age=<exp - now>`, plus `; Secure`
/// when `secure` (the server is reached over TLS).
///
/// `Max-Age` is never past the token's `exp`. `token` must have only cookie-safe characters (base64url and `.`);
/// anything else gets the [`clear_cookie`] value instead, so that no attribute can be smuggled in.
pub fn session_cookie(token: &str, exp_unix: u64, now_unix: u64, secure: bool) -> String {
    let safe = !token.is_empty() && token.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !safe {
        return clear_cookie(secure);
    }
    let max_age = exp_unix.saturating_sub(now_unix);
    let mut cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}");
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}

/// The `Set-Cookie` value that removes the session cookie (sign-out): empty, `Max-Age=0` and an `Expires` in the
/// past, with the same attributes as [`session_cookie`].
pub fn clear_cookie(secure: bool) -> String {
    let mut cookie =
        format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT");
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}

/// The value of the `examroom_session` cookie in a `Cookie` header (`a=1; examroom_session=…; b=2`, with any
/// spacing), without surrounding double quotes.
///
/// `None` when it is absent or empty, and also when the header holds it twice with different values: a sibling
/// domain can plant a second cookie of the same name ("cookie tossing"), and guessing which one is ours is worse
/// than asking the person to sign in again.
pub fn cookie_token(cookie_header: &str) -> Option<&str> {
    let mut found: Option<&str> = None;
    for pair in cookie_header.split(';') {
        let Some((name, value)) = pair.split_once('=') else { continue };
        if name.trim() != COOKIE {
            continue;
        }
        let value = value.trim();
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
        match found {
            Some(v) if v != value => return None,
            _ => found = Some(value),
        }
    }
    found.filter(|v| !v.is_empty())
}

/// The token in an `Authorization` header value: `Bearer <token>` with the scheme in any case and one or more
/// spaces after it. `None` for any other scheme, a missing token, or a token with spaces in it.
pub fn bearer_token(authorization_header: &str) -> Option<&str> {
    let value = authorization_header.trim_matches(|c| c == ' ' || c == '\t');
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim_start_matches(' ');
    if token.is_empty() || token.contains(|c: char| c.is_ascii_whitespace()) {
        return None;
    }
    Some(token)
}

/// Where a request's identity came from. Cookie requests come from a browser and, when they change state, need
/// the CSRF checks ([`csrf_allows`]); WebSocket upgrades with a cookie need [`check_origin`].
///
/// `Debug` shows the kind and the length, never the token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// `Authorization: Bearer <token>`.
    Bearer(&'a str),
    /// The `examroom_session` cookie.
    Cookie(&'a str),
}

impl fmt::Debug for Credential<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bearer(t) => write!(f, "Bearer(<{} bytes>)", t.len()),
            Self::Cookie(t) => write!(f, "Cookie(<{} bytes>)", t.len()),
        }
    }
}

impl<'a> Credential<'a> {
    /// The token.
    pub fn token(&self) -> &'a str {
        match self {
            Self::Bearer(t) | Self::Cookie(t) => t,
        }
    }

    /// Whether this came from the browser cookie, so that state changes need the CSRF checks.
    pub fn is_cookie(&self) -> bool {
        matches!(self, Self::Cookie(_))
    }

    /// The credential in a request's headers.
    ///
    /// An `Authorization` header, when present, is the credential: it must be a single `Bearer` header, and the
    /// cookie is then not looked at. Otherwise the `examroom_session` cookie, from any of the `Cookie` headers
    /// (HTTP/2 may split them). No credential is [`AuthError::Missing`]; nothing else is ever taken as identity.
    pub fn from_headers(headers: &'a HeaderMap) -> Result<Self, AuthError> {
        let mut auth = headers.get_all(header::AUTHORIZATION).iter();
        if let Some(value) = auth.next() {
            if auth.next().is_some() {
                return Err(AuthError::Malformed("more than one Authorization header"));
            }
            let value = value.to_str().map_err(|_| AuthError::Malformed("the Authorization header is not text"))?;
            return bearer_token(value)
                .map(Self::Bearer)
                .ok_or(AuthError::Malformed("the Authorization header is not `Bearer <token>`"));
        }
        let mut found: Option<&'a str> = None;
        for value in headers.get_all(header::COOKIE) {
            let Ok(text) = value.to_str() else { continue };
            // Any mention of the cookie, even one `cookie_token` rejects as ambiguous, takes part in the check.
            let mentioned = text.split(';').any(|p| p.split_once('=').is_some_and(|(n, _)| n.trim() == COOKIE));
            if !mentioned {
                continue;
            }
            let token = cookie_token(text).ok_or(AuthError::Malformed("the session cookie is empty or ambiguous"))?;
            match found {
                Some(t) if t != token => return Err(AuthError::Malformed("the session cookie is ambiguous")),
                _ => found = Some(token),
            }
        }
        found.map(Self::Cookie).ok_or(AuthError::Missing)
    }
}

/// The CSRF rule for a request that changes state: a bearer request passes; a cookie request passes only when
/// [`check_origin`] accepts its `Origin` and it carries `X-Examroom: 1` (`x_examroom` is that header's value).
///
/// Call it for every state-changing method (anything but `GET`, `HEAD` and `OPTIONS`); read-only requests and
/// SSE need no CSRF check, and WebSocket upgrades with a cookie need [`check_origin`] alone.
pub fn csrf_allows(
    credential: &Credential<'_>,
    origin: Option<&str>,
    x_examroom: Option<&str>,
    host: Option<&str>,
    public_origin: Option<&str>,
    behind_tls: bool,
) -> bool {
    match credential {
        Credential::Bearer(_) => true,
        Credential::Cookie(_) => {
            x_examroom.map(str::trim) == Some("1") && check_origin(origin, host, public_origin, behind_tls)
        }
    }
}

/// A parsed `scheme://host[:port]`, lowercased, with the scheme's default port removed.
#[derive(Debug, PartialEq, Eq)]
struct Origin {
    https: bool,
    host: String,
    port: Option<u16>,
}

impl Origin {
    fn parse(s: &str) -> Option<Self> {
        let (scheme, authority) = s.split_once("://")?;
        let https = if scheme.eq_ignore_ascii_case("https") {
            true
        } else if scheme.eq_ignore_ascii_case("http") {
            false
        } else {
            return None;
        };
        let (host, port) = parse_authority(authority)?;
        let default = if https { 443 } else { 80 };
        Some(Self { https, host, port: port.filter(|&p| p != default) })
    }
}

/// Splits `host[:port]` (or `[v6]:port`) and lowercases the host. Refuses paths, user info, empty parts and
/// anything else a bare authority cannot contain.
fn parse_authority(s: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if inside.is_empty() || !inside.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.') {
            return None;
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (&s[..inside.len() + 2], port)
    } else {
        let (host, port) = match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        if host.is_empty() || !host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')) {
            return None;
        }
        (host, port)
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
        Some(_) => return None,
    };
    Some((host.to_ascii_lowercase(), port))
}

/// Whether `public_origin` (from configuration) is a usable `http(s)://host[:port]` origin, for checking the
/// configuration at start-up. A trailing `/` is allowed.
pub fn is_valid_origin(public_origin: &str) -> bool {
    Origin::parse(public_origin.strip_suffix('/').unwrap_or(public_origin)).is_some()
}

/// Whether a request's `Origin` header is the server's own origin.
///
/// When `public_origin` is configured (for example `https://exam.example.org` behind a proxy), the origin must
/// equal it: scheme, host and port. Otherwise the server's origin is the scheme it is reached with and the host and
/// port of the request's `Host` header. The scheme is `http` (the listener speaks plain HTTP), or `https` when
/// `behind_tls` says a TLS proxy sits in front (the `secure_cookies` setting); the request itself cannot be trusted
/// to say. Hosts compare case-insensitively and a scheme's default port may be left out on either side. A missing
/// origin, `null`, another scheme, anything that is not a bare `scheme://host[:port]`, or a missing `Host` without a
/// configured origin is refused.
pub fn check_origin(origin: Option<&str>, host: Option<&str>, public_origin: Option<&str>, behind_tls: bool) -> bool {
    let Some(origin) = origin.and_then(Origin::parse) else { return false };
    if let Some(public) = public_origin {
        return Origin::parse(public.strip_suffix('/').unwrap_or(public)).is_some_and(|p| p == origin);
    }
    let Some((host, port)) = host.and_then(parse_authority) else { return false };
    let default = if behind_tls { 443 } else { 80 };
    origin.https == behind_tls && host == origin.host && port.filter(|&p| p != default) == origin.port
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-secret";
    const NOW: u64 = 1_700_000_000;

    /// A 2048-bit RSA key made for these tests only (`openssl genrsa -traditional 2048`).
    const TEST_RSA_PRIVATE_PEM: &str = "-----BEGIN RSA PRIVATE KEY-----
MIIEpAIBAAKCAQEAtLYS0JJMroq/I+A801fqQ4ajV3tBnY042/lBREf1XLM/qQby
iZGuJOvOGxGkeLV2Fx63AJyQ/S1nNIwA4kdcPfkHAgX8rKM3HvHSe7U38IqlsHCJ
yajtBwRXcIk9TOPgGWmcqkf2c76s1j4lwKl9TPg/6ZqU1xhfmmZ3cZGII1WI13cE
M0sSpTam4SuxsPFmGbUow7CpRX/y7Ygl9Z8dna4e3LSJsZiIt4v9meRI32H6HQB5
iwOumzYG7UKWP+ZUViLMEpPcJwaqM+vbvytDTt48YcPp874zx44UzlAU4odxTBT9
OGxXVrZz6mYQbVL54CxzgmFaclchb3D6BvzrkQIDAQABAoIBAAU8k/e/j5GMw3xz
iGuy697UUVotABIj2CKWut+Syr9KkfUQ1pkqM67N9wFljduyHXeOzCyMPO7bQJb/
Ghz0hq2kkGGMgR2TFrsytH/heNsjd2jxH+sMNj8qbuq7zV8TqOgvnWq5TmDdBQbp
0t/+AVuoQ3jeYgMIKagQoVQ1DIoCiUwFgfu6sxW5lVK3BB2NdJSV42VtTRR7B34z
k6oTdvR/QEbV/wJI9Abc5tUXI1HgOBDAQUiUhaf5N7gJcS9zDOCh9gtMkyXLlWd2
IKHwAK7aU6BDID5tVVzYL7gxUwl7VDlDtsW5obg6OmFlIZyg/khWElVaLibmHuKv
Z9/HEgkCgYEA+WQNFPuI5Ikfl6kB1pzf6SeZjx3fKIdsZJx3Ls93fEPRNpA3SQpp
XgxtFBi/GMJNol+muHYfRhpvvSlroxh2kNVQjhwJAsZCeyV2q+KB6P08VTqZiMVz
2ps0l72Z318MKJYlNqR+qg4aaBsXafojSnDbTucIhaBzis1hGGPeZQkCgYEAuYAT
2QuNs3PwgB+zy3dWkkn77MazFoREQW7ugjlc9LZkNWitD0ddOdMMN1XHF/LzFsmX
SQgcznqf4NLMJx3mx+BZGfQZl22kZRrSQMDs3u4QteOL+SSB0A8KgS0UvVDh9M13
qjX8i8EpGUGZKMyT1gKjXUQuSOvvlLRjngLEPEkCgYEAqDUmaa+aTmJ6b4VrmwAm
OhEejpwcRy7IGjg6XtVKBwOK2d19nIMsPGXvMG3cfmuXh1wyjBoHz/XGxfRpCBFY
7ykhcyhPn5JvhrXnC9nzu10KU4X5xnk/QgQK/gnA/hsSjVFv+iIK2NI4V11mdnFj
WjMyiE5lvhNRux35TkUV3FkCgYBgeIZZ81M/R4WE7HfR0f941vcofXG3vRPOP8XU
fcalEZHt4MFX19JY9zQ8NuTyxIu9hxuhhJGOpGEvSBGaKkfSHQ/ZmoQQp5m+ZwN/
X5YQnhicr3klGeJU9O2OnoZRqpXIfW7FW4w6ljssglwHxtT/kKGrKIE1tVYErQe9
rkyl2QKBgQDc/8aJEkjoP/3sVekLVjql4PHdgaLHrF/a/mDq9G7XPtB5/G+9Fyro
6gwlPGr9t/QnfA7t77PJ5HCjdQlIp5pY6ArlV4fcQSCi61fd0tfVhZsIsQv4A7JF
6cH2XR3qFuzOuvAet08rb4qTGJoZ2X6bcp7drHHuKp8+tnM1Km21eQ==
-----END RSA PRIVATE KEY-----
";

    /// The public half of [`TEST_RSA_PRIVATE_PEM`] as SubjectPublicKeyInfo.
    const TEST_RSA_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAtLYS0JJMroq/I+A801fq
Q4ajV3tBnY042/lBREf1XLM/qQbyiZGuJOvOGxGkeLV2Fx63AJyQ/S1nNIwA4kdc
PfkHAgX8rKM3HvHSe7U38IqlsHCJyajtBwRXcIk9TOPgGWmcqkf2c76s1j4lwKl9
TPg/6ZqU1xhfmmZ3cZGII1WI13cEM0sSpTam4SuxsPFmGbUow7CpRX/y7Ygl9Z8d
na4e3LSJsZiIt4v9meRI32H6HQB5iwOumzYG7UKWP+ZUViLMEpPcJwaqM+vbvytD
Tt48YcPp874zx44UzlAU4odxTBT9OGxXVrZz6mYQbVL54CxzgmFaclchb3D6Bvzr
kQIDAQAB
-----END PUBLIC KEY-----
";

    /// The same public key as PKCS#1.
    const TEST_RSA_PUBLIC_PKCS1_PEM: &str = "-----BEGIN RSA PUBLIC KEY-----
MIIBCgKCAQEAtLYS0JJMroq/I+A801fqQ4ajV3tBnY042/lBREf1XLM/qQbyiZGu
JOvOGxGkeLV2Fx63AJyQ/S1nNIwA4kdcPfkHAgX8rKM3HvHSe7U38IqlsHCJyajt
BwRXcIk9TOPgGWmcqkf2c76s1j4lwKl9TPg/6ZqU1xhfmmZ3cZGII1WI13cEM0sS
pTam4SuxsPFmGbUow7CpRX/y7Ygl9Z8dna4e3LSJsZiIt4v9meRI32H6HQB5iwOu
mzYG7UKWP+ZUViLMEpPcJwaqM+vbvytDTt48YcPp874zx44UzlAU4odxTBT9OGxX
VrZz6mYQbVL54CxzgmFaclchb3D6BvzrkQIDAQAB
-----END RSA PUBLIC KEY-----
";

    /// A 1024-bit RSA public key: too small for RS256.
    const SMALL_RSA_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDPlEVbbiZsAZfqjL29JRfVoU+K
hiPnRHcIEO4OpzUO6BlAOMveRvfOSFUNyUt9v8yPsJKPVnIus75PookfIWjDoDKW
FyDnXRQJLy3D2qd2XAbzgqJ2KWSYiXav4/pisSdxQ9YalhSl0YfpJNRLGTgDG86u
boAjEU9jLxXnFvTJDQIDAQAB
-----END PUBLIC KEY-----
";

    fn keys() -> TokenKeys {
        TokenKeys::from_secret(SECRET)
    }

    fn rsa_keys() -> TokenKeys {
        keys().with_rs256_public_pem(TEST_RSA_PUBLIC_PEM).unwrap()
    }

    fn alice() -> UserId {
        UserId::parse("alice@example.org").unwrap()
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Signs arbitrary claims JSON with `alg` and an HMAC key.
    fn sign_hmac(alg: Algorithm, secret: &[u8], claims: &serde_json::Value) -> String {
        jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    /// Signs arbitrary claims JSON with HS256 and the test secret.
    fn hs256(claims: serde_json::Value) -> String {
        sign_hmac(Algorithm::HS256, SECRET, &claims)
    }

    fn rs256(claims: &serde_json::Value) -> String {
        let (_, der) = pem_decode(TEST_RSA_PRIVATE_PEM).unwrap();
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), claims, &EncodingKey::from_rsa_der(&der)).unwrap()
    }

    fn good_claims() -> serde_json::Value {
        serde_json::json!({"sub": "alice@example.org", "exp": NOW + 60})
    }

    fn unsigned(header: &str, claims: &serde_json::Value) -> String {
        format!("{}.{}.", b64(header.as_bytes()), b64(claims.to_string().as_bytes()))
    }

    // ---- tokens: the good path ----

    #[test]
    fn mint_and_verify_round_trip_for_both_roles() {
        let k = keys();
        for role in Role::ALL {
            let token = k.mint(&alice(), role, Duration::from_secs(3600), NOW);
            let id = k.verify(&token, NOW).unwrap();
            assert_eq!(id, Identity { user: alice(), role });
            // Still valid one second before exp.
            assert_eq!(k.verify(&token, NOW + 3599).unwrap().role, role);
        }
    }

    #[test]
    fn a_port_grant_opens_one_port_and_is_never_a_sign_in_token() {
        let k = keys();
        let grant = PortGrant { sid: "s-1".into(), port: 8000 };
        let token = k.mint_port_grant(&alice(), grant.clone(), Duration::from_secs(60), NOW);
        assert_eq!(k.verify_port_grant(&token, NOW).unwrap(), (alice(), grant));
        assert!(matches!(k.verify(&token, NOW), Err(AuthError::InvalidClaims(_))), "a grant signs nobody in");
        assert!(matches!(k.verify_port_grant(&token, NOW + 60), Err(AuthError::Expired { .. })));
        // A sign-in token is not a grant, and a grant from another secret is refused.
        let signin = k.mint(&alice(), Role::Candidate, Duration::from_secs(60), NOW);
        assert!(k.verify_port_grant(&signin, NOW).is_err());
        let other = TokenKeys::from_secret(b"another-secret-another-secret-0123456789");
        let forged =
            other.mint_port_grant(&alice(), PortGrant { sid: "s-1".into(), port: 8000 }, Duration::from_secs(60), NOW);
        assert!(matches!(k.verify_port_grant(&forged, NOW), Err(AuthError::BadSignature)));
    }

    #[test]
    fn minted_claims_are_as_documented() {
        let token = keys().mint(&alice(), Role::Proctor, Duration::from_secs(7200), NOW);
        let payload = token.split('.').nth(1).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(
            claims,
            serde_json::json!({"sub": "alice@example.org", "exp": NOW + 7200, "role": "proctor", "iat": NOW})
        );
        let header = token.split('.').next().unwrap();
        let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        assert_eq!(header["alg"], "HS256");
    }

    #[test]
    fn expiry_only_for_tokens_signed_with_these_keys() {
        let k = keys();
        let token = k.mint(&alice(), Role::Candidate, Duration::from_secs(90), NOW);
        assert_eq!(k.expiry(&token), Some(NOW + 90));
        assert_eq!(TokenKeys::from_secret(&[7; 32]).expiry(&token), None);
        assert_eq!(k.expiry(&unsigned(r#"{"alg":"none"}"#, &good_claims())), None);
        assert_eq!(k.expiry(&hs256(serde_json::json!({"sub": "../x", "exp": NOW + 60}))), None);
    }

    #[test]
    fn missing_role_means_candidate() {
        let id = keys().verify(&hs256(good_claims()), NOW).unwrap();
        assert_eq!(id.role, Role::Candidate);
        assert_eq!(id.user, alice());
        let c: Claims = serde_json::from_str(r#"{"sub":"a","exp":1}"#).unwrap();
        assert_eq!(c.role, Role::Candidate);
        assert_eq!(c.iat, None);
        assert_eq!(serde_json::to_string(&c).unwrap(), r#"{"sub":"a","exp":1,"role":"candidate"}"#);
    }

    #[test]
    fn rs256_token_is_accepted_with_the_configured_key() {
        let mut claims = good_claims();
        claims["role"] = "proctor".into();
        let id = rsa_keys().verify(&rs256(&claims), NOW).unwrap();
        assert_eq!(id, Identity { user: alice(), role: Role::Proctor });
        // PKCS#1 PEM works too, and HS256 keeps working next to RS256.
        let k = keys().with_rs256_public_pem(TEST_RSA_PUBLIC_PKCS1_PEM).unwrap();
        assert!(k.verify(&rs256(&claims), NOW).is_ok());
        assert!(k.verify(&hs256(good_claims()), NOW).is_ok());
    }

    // ---- tokens: refusals ----

    #[test]
    fn alg_none_is_refused() {
        let k = rsa_keys();
        for header in [r#"{"alg":"none","typ":"JWT"}"#, r#"{"alg":"None"}"#, r#"{"alg":"NONE"}"#, r#"{"alg":""}"#] {
            let token = unsigned(header, &good_claims());
            assert!(token.ends_with('.'));
            assert!(matches!(k.verify(&token, NOW), Err(AuthError::AlgorithmRefused(_))), "{header}");
            // With a signature part copied from a valid token, too.
            let sig = hs256(good_claims()).rsplit('.').next().unwrap().to_owned();
            assert!(matches!(k.verify(&format!("{token}{sig}"), NOW), Err(AuthError::AlgorithmRefused(_))));
        }
        // Two parts only (no trailing dot) is not a JWS at all.
        let two = format!("{}.{}", b64(br#"{"alg":"none"}"#), b64(good_claims().to_string().as_bytes()));
        assert!(matches!(k.verify(&two, NOW), Err(AuthError::Malformed(_))));
    }

    #[test]
    fn hs256_with_an_empty_signature_is_refused() {
        let token = unsigned(r#"{"alg":"HS256","typ":"JWT"}"#, &good_claims());
        assert_eq!(keys().verify(&token, NOW), Err(AuthError::BadSignature));
    }

    #[test]
    fn missing_exp_is_refused() {
        let token = hs256(serde_json::json!({"sub": "alice@example.org"}));
        assert!(matches!(keys().verify(&token, NOW), Err(AuthError::InvalidClaims(_))));
        for exp in [serde_json::json!(null), serde_json::json!("9999999999"), serde_json::json!(-1)] {
            let token = hs256(serde_json::json!({"sub": "alice@example.org", "exp": exp}));
            assert!(matches!(keys().verify(&token, NOW), Err(AuthError::InvalidClaims(_))), "{exp}");
        }
    }

    #[test]
    fn past_exp_is_refused_without_leeway() {
        let k = keys();
        let token = k.mint(&alice(), Role::Candidate, Duration::from_secs(60), NOW);
        assert_eq!(k.verify(&token, NOW + 60), Err(AuthError::Expired { exp: NOW + 60, now: NOW + 60 }));
        assert!(matches!(k.verify(&token, NOW + 61), Err(AuthError::Expired { .. })));
        assert!(matches!(k.verify(&token, u64::MAX), Err(AuthError::Expired { .. })));
        let zero = k.mint(&alice(), Role::Candidate, Duration::ZERO, NOW);
        assert!(matches!(k.verify(&zero, NOW), Err(AuthError::Expired { .. })));
    }

    #[test]
    fn bad_signature_is_refused() {
        let token = hs256(good_claims());
        let other = TokenKeys::from_secret(b"another-secret-another-secret-another-secret");
        assert_eq!(other.verify(&token, NOW), Err(AuthError::BadSignature));

        // Changed claims under the original signature.
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = b64(serde_json::json!({"sub": "alice@example.org", "exp": NOW + 60, "role": "proctor"})
            .to_string()
            .as_bytes());
        assert_eq!(keys().verify(&parts.join("."), NOW), Err(AuthError::BadSignature));

        // A flipped signature character.
        let mut sig: Vec<u8> = token.rsplit('.').next().unwrap().bytes().collect();
        sig[3] = if sig[3] == b'A' { b'B' } else { b'A' };
        let tampered = format!("{}.{}", token.rsplit_once('.').unwrap().0, String::from_utf8(sig).unwrap());
        assert_eq!(keys().verify(&tampered, NOW), Err(AuthError::BadSignature));
    }

    #[test]
    fn other_hmac_algorithms_with_the_same_secret_are_refused() {
        for alg in [Algorithm::HS384, Algorithm::HS512] {
            let token = sign_hmac(alg, SECRET, &good_claims());
            assert!(matches!(keys().verify(&token, NOW), Err(AuthError::AlgorithmRefused(_))), "{alg:?}");
            assert!(matches!(rsa_keys().verify(&token, NOW), Err(AuthError::AlgorithmRefused(_))), "{alg:?}");
        }
    }

    #[test]
    fn rs256_without_a_configured_key_is_refused() {
        let token = rs256(&good_claims());
        assert!(matches!(keys().verify(&token, NOW), Err(AuthError::AlgorithmRefused(_))));
        // Other asymmetric algorithms are refused even with an RSA key configured.
        for alg in ["RS384", "RS512", "PS256", "ES256", "EdDSA"] {
            let forged =
                format!("{}.{}", b64(format!(r#"{{"alg":"{alg}"}}"#).as_bytes()), token.split_once('.').unwrap().1);
            assert!(matches!(rsa_keys().verify(&forged, NOW), Err(AuthError::AlgorithmRefused(_))), "{alg}");
        }
    }

    #[test]
    fn key_confusion_hs256_signed_with_the_rsa_public_key_is_refused() {
        let k = rsa_keys();
        let mut claims = good_claims();
        claims["role"] = "proctor".into();
        let (_, spki_der) = pem_decode(TEST_RSA_PUBLIC_PEM).unwrap();
        let pkcs1_der = spki_rsa_public_key(&spki_der).unwrap();
        for public_bytes in [
            TEST_RSA_PUBLIC_PEM.as_bytes(),
            TEST_RSA_PUBLIC_PEM.trim_end().as_bytes(),
            TEST_RSA_PUBLIC_PKCS1_PEM.as_bytes(),
            &spki_der,
            &pkcs1_der,
        ] {
            let forged = sign_hmac(Algorithm::HS256, public_bytes, &claims);
            assert_eq!(k.verify(&forged, NOW), Err(AuthError::BadSignature));
        }
        // And an RS256 token is not accepted by an HS256-only server even if it knows the public key's bytes.
        let hs_with_pem_secret = TokenKeys::from_secret(TEST_RSA_PUBLIC_PEM.as_bytes());
        assert!(matches!(hs_with_pem_secret.verify(&rs256(&claims), NOW), Err(AuthError::AlgorithmRefused(_))));
    }

    #[test]
    fn sub_must_be_a_user_id() {
        for sub in [serde_json::json!("../etc"), serde_json::json!(""), serde_json::json!("a b"), serde_json::json!(7)]
        {
            let token = hs256(serde_json::json!({"sub": sub, "exp": NOW + 60}));
            assert!(matches!(keys().verify(&token, NOW), Err(AuthError::InvalidClaims(_))), "{sub}");
        }
        let token = hs256(serde_json::json!({"exp": NOW + 60}));
        assert!(matches!(keys().verify(&token, NOW), Err(AuthError::InvalidClaims(_))));
    }

    #[test]
    fn unknown_role_is_refused() {
        for role in ["admin", "Proctor", "", "root\nproctor"] {
            let token = hs256(serde_json::json!({"sub": "alice@example.org", "exp": NOW + 60, "role": role}));
            let err = keys().verify(&token, NOW).unwrap_err();
            assert!(matches!(err, AuthError::InvalidClaims(_)), "{role}");
            assert!(!err.to_string().contains('\n'), "log line injection: {err}");
        }
        let token = hs256(serde_json::json!({"sub": "alice@example.org", "exp": NOW + 60, "role": null}));
        assert!(matches!(keys().verify(&token, NOW), Err(AuthError::InvalidClaims(_))));
    }

    #[test]
    fn oversized_tokens_are_refused_before_parsing() {
        let huge = "a".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(keys().verify(&huge, NOW), Err(AuthError::TooLong { len: MAX_TOKEN_LEN + 1 }));
        // A validly signed token over the limit is refused too.
        let big = hs256(serde_json::json!({"sub": "alice@example.org", "exp": NOW + 60, "pad": "x".repeat(8000)}));
        assert!(big.len() > MAX_TOKEN_LEN);
        assert!(matches!(keys().verify(&big, NOW), Err(AuthError::TooLong { .. })));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let k = keys();
        assert_eq!(k.verify("", NOW), Err(AuthError::Missing));
        let good = hs256(good_claims());
        for bad in [
            "x".to_owned(),
            "a.b".to_owned(),
            "a.b.c.d".to_owned(),
            format!("{good}.x"),
            format!(" {good}"),
            format!("{good};x=1"),
            good.replace('.', "/"),
            "!!!.b.c".to_owned(),
            format!("{}.{}", b64(b"not json"), good.split_once('.').unwrap().1),
            format!("{}.{}", b64(br#"{"typ":"JWT"}"#), good.split_once('.').unwrap().1),
        ] {
            assert!(matches!(k.verify(&bad, NOW), Err(AuthError::Malformed(_))), "{bad}");
        }
        // Claims that are not JSON, under a valid signature.
        let header = b64(br#"{"alg":"HS256"}"#);
        let body = b64(b"not json");
        let sig = hmac_sig(&format!("{header}.{body}"));
        assert!(k.verify(&format!("{header}.{body}.{sig}"), NOW).is_err());
    }

    /// An HS256 signature over `message` with the test secret.
    fn hmac_sig(message: &str) -> String {
        jsonwebtoken::crypto::sign(message.as_bytes(), &EncodingKey::from_secret(SECRET), Algorithm::HS256).unwrap()
    }

    #[test]
    fn crit_header_is_refused() {
        let header = b64(br#"{"alg":"HS256","crit":["exp"]}"#);
        let body = b64(good_claims().to_string().as_bytes());
        let sig = hmac_sig(&format!("{header}.{body}"));
        assert!(matches!(keys().verify(&format!("{header}.{body}.{sig}"), NOW), Err(AuthError::Malformed(_))));
        // While the same token without crit is fine.
        let header = b64(br#"{"alg":"HS256"}"#);
        let sig = hmac_sig(&format!("{header}.{body}"));
        assert!(keys().verify(&format!("{header}.{body}.{sig}"), NOW).is_ok());
    }

    #[test]
    fn duplicate_alg_in_header_is_refused() {
        let header = b64(br#"{"alg":"none","alg":"HS256"}"#);
        let body = b64(good_claims().to_string().as_bytes());
        let sig = hmac_sig(&format!("{header}.{body}"));
        assert!(keys().verify(&format!("{header}.{body}.{sig}"), NOW).is_err());
    }

    #[test]
    fn every_auth_error_is_the_same_401() {
        for e in [
            AuthError::Missing,
            AuthError::Malformed("x"),
            AuthError::TooLong { len: 9000 },
            AuthError::BadSignature,
            AuthError::Expired { exp: 1, now: 2 },
            AuthError::AlgorithmRefused("none".into()),
            AuthError::InvalidClaims("x".into()),
        ] {
            let d: DomainError = e.into();
            assert_eq!(d, DomainError::Unauthenticated);
            assert_eq!(d.http_status(), 401);
            assert_eq!(d.code(), "unauthenticated");
        }
    }

    #[test]
    fn debug_output_hides_secrets_and_tokens() {
        let k = keys();
        assert!(!format!("{k:?}").contains("0123456789abcdef"));
        let token = k.mint(&alice(), Role::Candidate, Duration::from_secs(60), NOW);
        let c = Credential::Cookie(&token);
        assert!(!format!("{c:?}").contains(&token[..10]));
        assert!(!format!("{:?}", Credential::Bearer(&token)).contains(&token[..10]));
    }

    // ---- RS256 keys ----

    #[test]
    fn rs256_public_key_forms() {
        assert!(keys().with_rs256_public_pem(TEST_RSA_PUBLIC_PEM).is_ok());
        assert!(keys().with_rs256_public_pem(TEST_RSA_PUBLIC_PKCS1_PEM).is_ok());
        let small = keys().with_rs256_public_pem(SMALL_RSA_PUBLIC_PEM).unwrap_err();
        assert!(small.contains("1024 bits"), "{small}");
        let private = keys().with_rs256_public_pem(TEST_RSA_PRIVATE_PEM).unwrap_err();
        assert!(private.contains("private key"), "{private}");
        assert!(keys().with_rs256_public_pem("not a pem").is_err());
        assert!(keys().with_rs256_public_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n").is_err());
        let truncated = TEST_RSA_PUBLIC_PEM.replace("kQIDAQAB\n", "");
        assert!(keys().with_rs256_public_pem(&truncated).is_err());
    }

    // ---- loading the secret ----

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn load_creates_the_secret_file_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let k1 = TokenKeys::load(&data, None, None).unwrap();
        let path = data.join(SECRET_FILE);
        assert_eq!(k1.secret_source(), &SecretSource::File { path: path.clone(), created: true });
        assert_eq!(mode_of(&path), 0o600);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(STANDARD.decode(text.trim()).unwrap().len(), NEW_SECRET_BYTES);
        assert!(!k1.has_rs256());

        // The second load reuses it: tokens from one verify with the other.
        let k2 = TokenKeys::load(&data, Some(""), None).unwrap();
        assert_eq!(k2.secret_source(), &SecretSource::File { path: path.clone(), created: false });
        assert_eq!(fs::read_to_string(&path).unwrap(), text);
        let token = k1.mint(&alice(), Role::Proctor, Duration::from_secs(60), NOW);
        assert_eq!(k2.verify(&token, NOW).unwrap().role, Role::Proctor);
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(&data).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [SECRET_FILE]);

        // The file's text is the secret, exactly as if it were in the environment.
        let from_env = TokenKeys::load(dir.path(), Some(text.trim()), None).unwrap();
        assert!(from_env.verify(&token, NOW).is_ok());
    }

    #[test]
    fn concurrent_loads_agree_on_one_secret() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_owned();
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let data = data.clone();
                std::thread::spawn(move || TokenKeys::load(&data, None, None).unwrap())
            })
            .collect();
        let all: Vec<TokenKeys> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let created = all.iter().filter(|k| matches!(k.secret_source(), SecretSource::File { created: true, .. }));
        assert_eq!(created.count(), 1);
        let token = all[0].mint(&alice(), Role::Candidate, Duration::from_secs(60), NOW);
        for k in &all {
            assert!(k.verify(&token, NOW).is_ok());
        }
        assert_eq!(fs::read_dir(&data).unwrap().count(), 1);
    }

    #[test]
    fn load_prefers_the_env_secret() {
        let dir = tempfile::tempdir().unwrap();
        let file_keys = TokenKeys::load(dir.path(), None, None).unwrap();
        let env = "e".repeat(MIN_SECRET_LEN);
        let env_keys = TokenKeys::load(dir.path(), Some(&env), None).unwrap();
        assert_eq!(env_keys.secret_source(), &SecretSource::Env);
        let token = env_keys.mint(&alice(), Role::Candidate, Duration::from_secs(60), NOW);
        assert!(TokenKeys::from_secret(env.as_bytes()).verify(&token, NOW).is_ok());
        assert_eq!(file_keys.verify(&token, NOW), Err(AuthError::BadSignature));
    }

    #[test]
    fn load_with_env_secret_does_not_touch_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("absent");
        TokenKeys::load(&data, Some(&"e".repeat(40)), None).unwrap();
        assert!(!data.exists());
    }

    #[test]
    fn load_refuses_a_short_env_secret() {
        let dir = tempfile::tempdir().unwrap();
        let err = TokenKeys::load(dir.path(), Some("too-short"), None).unwrap_err();
        assert!(matches!(err, KeyError::ShortEnvSecret { len: 9 }), "{err}");
        assert!(TokenKeys::load(dir.path(), Some(&"e".repeat(MIN_SECRET_LEN - 1)), None).is_err());
        assert!(!dir.path().join(SECRET_FILE).exists());
    }

    #[test]
    fn load_refuses_bad_secret_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SECRET_FILE);
        fs::write(&path, "short\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(TokenKeys::load(dir.path(), None, None), Err(KeyError::ShortSecretFile { len: 5, .. })));
        fs::write(&path, "x".repeat(40)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(TokenKeys::load(dir.path(), None, None), Err(KeyError::InsecureSecretFile { .. })));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        assert!(TokenKeys::load(dir.path(), None, None).is_ok());
    }

    #[test]
    fn load_reads_the_rs256_public_key() {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("rs256.pem");
        fs::write(&pem, TEST_RSA_PUBLIC_PEM).unwrap();
        let k = TokenKeys::load(dir.path(), None, Some(&pem)).unwrap();
        assert!(k.has_rs256());
        assert!(k.verify(&rs256(&good_claims()), NOW).is_ok());
        fs::write(&pem, SMALL_RSA_PUBLIC_PEM).unwrap();
        assert!(matches!(TokenKeys::load(dir.path(), None, Some(&pem)), Err(KeyError::BadPublicKey { .. })));
        let missing = dir.path().join("missing.pem");
        assert!(matches!(TokenKeys::load(dir.path(), None, Some(&missing)), Err(KeyError::Io { .. })));
    }

    // ---- cookies ----

    #[test]
    fn sign_in_ids_are_random_cookie_safe_and_stored_only_as_a_hash() {
        let (a, b) = (new_sign_in_id(), new_sign_in_id());
        assert_ne!(a, b);
        assert!(is_sign_in_id(&a) && is_sign_in_id(&b), "{a} {b}");
        assert_eq!(
            session_cookie(&a, NOW + 60, NOW, false),
            format!("examroom_session={a}; HttpOnly; SameSite=Strict; Path=/; Max-Age=60")
        );
        let h = sign_in_id_hash(&a);
        assert_eq!(h.len(), 64);
        assert!(h.bytes().all(|c| c.is_ascii_hexdigit()) && !h.contains(&a));
        assert_eq!(h, sign_in_id_hash(&a));
        assert_ne!(h, sign_in_id_hash(&b));
        // A token, garbage, or a near miss is not a sign-in id.
        let token = keys().mint(&alice(), Role::Candidate, Duration::from_secs(60), NOW);
        for bad in [token.as_str(), "", "garbage", &a[1..], &format!("{a}x"), &format!("{}.", &a[1..])] {
            assert!(!is_sign_in_id(bad), "{bad}");
        }
    }

    #[test]
    fn the_fingerprint_changes_with_every_key_and_only_then() {
        let k = keys();
        assert_eq!(k.fingerprint().len(), 32);
        assert_eq!(k.fingerprint(), keys().fingerprint());
        assert_ne!(k.fingerprint(), TokenKeys::from_secret(b"another-secret-another-secret-0123456").fingerprint());
        let with_rs = rsa_keys();
        assert_ne!(with_rs.fingerprint(), k.fingerprint());
        assert_eq!(with_rs.fingerprint(), rsa_keys().fingerprint());
        assert!(!k.fingerprint().contains(&hex(SECRET)[..8]));
    }

    #[test]
    fn session_cookie_attributes() {
        let token = keys().mint(&alice(), Role::Candidate, Duration::from_secs(3600), NOW);
        let c = session_cookie(&token, NOW + 3600, NOW, false);
        assert_eq!(c, format!("examroom_session={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age=3600"));
        assert!(!c.contains("Secure"));
        let s = session_cookie(&token, NOW + 3600, NOW + 100, true);
        let attrs: Vec<&str> = s.split("; ").collect();
        assert_eq!(attrs[0], format!("examroom_session={token}"));
        for a in ["HttpOnly", "SameSite=Strict", "Path=/", "Secure"] {
            assert!(attrs.contains(&a), "{a} missing from {s}");
        }
        // Max-Age never outlives the token.
        assert!(attrs.contains(&"Max-Age=3500"));
        assert!(session_cookie(&token, NOW, NOW + 5, false).contains("Max-Age=0"));
    }

    #[test]
    fn session_cookie_refuses_unsafe_values() {
        for bad in ["", "a; Domain=evil.example", "a\r\nSet-Cookie: x=1", "a b", "a,b"] {
            assert_eq!(session_cookie(bad, NOW + 60, NOW, true), clear_cookie(true), "{bad:?}");
        }
    }

    #[test]
    fn clear_cookie_expires_it() {
        let c = clear_cookie(false);
        assert!(c.starts_with("examroom_session=;"));
        assert!(c.contains("Max-Age=0") && c.contains("Expires=Thu, 01 Jan 1970 00:00:00 GMT"));
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Path=/"));
        assert!(!c.contains("Secure"));
        assert!(clear_cookie(true).ends_with("; Secure"));
    }

    #[test]
    fn cookie_token_parsing() {
        assert_eq!(cookie_token("examroom_session=abc"), Some("abc"));
        assert_eq!(cookie_token("a=1; examroom_session=abc; b=2"), Some("abc"));
        assert_eq!(cookie_token("a=1;examroom_session=abc;b=2"), Some("abc"));
        assert_eq!(cookie_token("  a=1 ;   examroom_session = abc  ;b=2;"), Some("abc"));
        assert_eq!(cookie_token("a=1;\texamroom_session=abc"), Some("abc"));
        assert_eq!(cookie_token("examroom_session=\"abc\""), Some("abc"));
        assert_eq!(cookie_token("x.y=1; examroom_session=a.b.c"), Some("a.b.c"));
        // The same value twice is fine; two different values are ambiguous.
        assert_eq!(cookie_token("examroom_session=abc; examroom_session=abc"), Some("abc"));
        assert_eq!(cookie_token("examroom_session=abc; examroom_session=def"), None);
        // Absent, empty, or only a similar name.
        assert_eq!(cookie_token(""), None);
        assert_eq!(cookie_token("a=1; b=2"), None);
        assert_eq!(cookie_token("examroom_session="), None);
        assert_eq!(cookie_token("examroom_session"), None);
        assert_eq!(cookie_token("xexamroom_session=abc; examroom_session_old=def"), None);
        assert_eq!(cookie_token("Examroom_Session=abc"), None);
    }

    #[test]
    fn bearer_token_parsing() {
        assert_eq!(bearer_token("Bearer abc.def.ghi"), Some("abc.def.ghi"));
        assert_eq!(bearer_token("bearer x"), Some("x"));
        assert_eq!(bearer_token("BEARER x"), Some("x"));
        assert_eq!(bearer_token("Bearer  x"), Some("x"));
        assert_eq!(bearer_token("Bearer x "), Some("x"));
        assert_eq!(bearer_token("Basic x"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearerx"), None);
        assert_eq!(bearer_token("Bearer x y"), None);
        assert_eq!(bearer_token(""), None);
        assert_eq!(bearer_token("x"), None);
    }

    #[test]
    fn credential_from_headers() {
        use axum::http::HeaderValue;
        let mut h = HeaderMap::new();
        assert_eq!(Credential::from_headers(&h), Err(AuthError::Missing));

        h.insert(header::COOKIE, HeaderValue::from_static("a=1; examroom_session=cookie.tok.en"));
        assert_eq!(Credential::from_headers(&h), Ok(Credential::Cookie("cookie.tok.en")));
        assert!(Credential::from_headers(&h).unwrap().is_cookie());

        // A second Cookie header (HTTP/2 splits them) with another value is ambiguous.
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(Credential::from_headers(&h), Ok(Credential::Cookie("cookie.tok.en")));
        h.append(header::COOKIE, HeaderValue::from_static("examroom_session=other"));
        assert!(matches!(Credential::from_headers(&h), Err(AuthError::Malformed(_))));

        // Authorization wins over the cookie, and a bad one does not fall back to it.
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer bear.er.tok"));
        let c = Credential::from_headers(&h).unwrap();
        assert_eq!(c, Credential::Bearer("bear.er.tok"));
        assert_eq!(c.token(), "bear.er.tok");
        assert!(!c.is_cookie());
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic dXNlcjpwYXNz"));
        assert!(matches!(Credential::from_headers(&h), Err(AuthError::Malformed(_))));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer a"));
        h.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer b"));
        assert!(matches!(Credential::from_headers(&h), Err(AuthError::Malformed(_))));

        // A query string or anything else is never identity.
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("exam.example"));
        h.insert("x-user", HeaderValue::from_static("alice"));
        assert_eq!(Credential::from_headers(&h), Err(AuthError::Missing));
    }

    // ---- CSRF ----

    #[test]
    fn check_origin_against_the_host_header() {
        let yes = |o: &str, h: &str| assert!(check_origin(Some(o), Some(h), None, false), "{o} vs {h}");
        let no = |o: &str, h: &str| assert!(!check_origin(Some(o), Some(h), None, false), "{o} vs {h}");
        yes("http://exam.example", "exam.example");
        yes("http://exam.example:8080", "exam.example:8080");
        yes("http://127.0.0.1:8080", "127.0.0.1:8080");
        yes("http://[::1]:8080", "[::1]:8080");
        yes("HTTP://Exam.Example:8080", "exam.example:8080");
        yes("http://exam.example:80", "exam.example");
        yes("http://exam.example", "exam.example:80");
        no("http://exam.example:8080", "exam.example:8081");
        no("http://exam.example:8080", "exam.example");
        no("http://exam.example", "exam.example:8080");
        // The listener speaks plain HTTP: an https page is another origin, whatever its host and port.
        no("https://exam.example", "exam.example");
        no("https://exam.example:8080", "exam.example:8080");
        no("https://127.0.0.1:8080", "127.0.0.1:8080");
        no("https://exam.example", "exam.example:443");
        no("https://exam.example", "exam.example:80");
        no("http://evil.example", "exam.example");
        no("http://exam.example.evil.example", "exam.example");
        no("http://evil.example:8080", "exam.example:8080");
        no("ftp://exam.example", "exam.example");
        no("null", "exam.example");
        no("", "exam.example");
        no("http://exam.example/", "exam.example");
        no("http://user@exam.example", "exam.example");
        no("http://exam.example:8080 ", "exam.example:8080");
        no("http://exam.example", "");
        assert!(!check_origin(None, Some("exam.example"), None, false));
        assert!(!check_origin(Some("http://exam.example"), None, None, false));
        assert!(!check_origin(None, None, None, false));
    }

    #[test]
    fn check_origin_behind_tls_wants_https() {
        let yes = |o: &str, h: &str| assert!(check_origin(Some(o), Some(h), None, true), "{o} vs {h}");
        let no = |o: &str, h: &str| assert!(!check_origin(Some(o), Some(h), None, true), "{o} vs {h}");
        yes("https://exam.example", "exam.example");
        yes("https://exam.example", "exam.example:443");
        yes("https://exam.example:443", "exam.example");
        yes("https://exam.example:8443", "exam.example:8443");
        no("http://exam.example", "exam.example");
        no("http://exam.example:8443", "exam.example:8443");
        no("https://exam.example", "exam.example:80");
        no("https://exam.example:8443", "exam.example");
        no("https://evil.example", "exam.example");
    }

    #[test]
    fn check_origin_against_a_configured_public_origin() {
        let public = Some("https://exam.example.org");
        assert!(check_origin(Some("https://exam.example.org"), Some("127.0.0.1:8080"), public, false));
        assert!(check_origin(Some("https://exam.example.org"), None, public, false));
        assert!(check_origin(Some("https://exam.example.org"), None, Some("https://exam.example.org/"), false));
        assert!(check_origin(Some("https://exam.example.org"), None, Some("https://exam.example.org:443"), false));
        // Different scheme, host or port.
        assert!(!check_origin(Some("http://exam.example.org"), Some("exam.example.org"), public, false));
        assert!(!check_origin(Some("https://evil.example"), Some("evil.example"), public, false));
        assert!(!check_origin(Some("https://exam.example.org:8443"), None, public, false));
        // The Host header does not count once a public origin is configured.
        assert!(!check_origin(Some("http://127.0.0.1:8080"), Some("127.0.0.1:8080"), public, false));
        // Missing and null origins.
        assert!(!check_origin(None, Some("exam.example.org"), public, false));
        assert!(!check_origin(Some("null"), Some("exam.example.org"), public, false));
        // A broken configuration matches nothing.
        assert!(!check_origin(Some("https://exam.example.org"), None, Some("exam.example.org"), false));
        assert!(is_valid_origin("https://exam.example.org/"));
        assert!(is_valid_origin("http://localhost:8080"));
        assert!(!is_valid_origin("exam.example.org"));
        assert!(!is_valid_origin("https://exam.example.org/app"));
    }

    #[test]
    fn csrf_rule() {
        let cookie = Credential::Cookie("t");
        let bearer = Credential::Bearer("t");
        let o = Some("https://exam.example");
        let h = Some("exam.example");
        assert!(csrf_allows(&cookie, o, Some("1"), h, None, true));
        assert!(!csrf_allows(&cookie, o, Some("1"), h, None, false));
        assert!(!csrf_allows(&cookie, o, None, h, None, true));
        assert!(!csrf_allows(&cookie, o, Some("0"), h, None, true));
        assert!(!csrf_allows(&cookie, o, Some("true"), h, None, true));
        assert!(!csrf_allows(&cookie, Some("https://evil.example"), Some("1"), h, None, true));
        assert!(!csrf_allows(&cookie, None, Some("1"), h, None, true));
        assert!(!csrf_allows(&cookie, Some("null"), Some("1"), h, None, true));
        // Programmatic clients with a bearer token are not subject to it.
        assert!(csrf_allows(&bearer, None, None, None, None, false));
    }
}
