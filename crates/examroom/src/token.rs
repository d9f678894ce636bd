//! `examroom token`: mints a token (or a sign-in URL) with the server's secret.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use examroom_api::auth::TokenKeys;
use examroom_core::{parse_duration, Role, UserId};

pub fn run(data_dir: PathBuf, user: &str, role: &str, ttl: &str, url: bool, base_url: &str) -> Result<()> {
    let user = UserId::parse(user).map_err(|e| anyhow::anyhow!("--user: {e}"))?;
    let role = match role {
        "candidate" => Role::Candidate,
        "proctor" => Role::Proctor,
        other => anyhow::bail!("--role must be candidate or proctor, not {other:?}"),
    };
    let ttl: Duration = parse_duration(ttl).map_err(|e| anyhow::anyhow!("--ttl: {e}"))?;
    std::fs::create_dir_all(&data_dir).with_context(|| format!("create {}", data_dir.display()))?;
    let secret = std::env::var("EXAMROOM_TOKEN_SECRET").ok().filter(|s| !s.is_empty());
    let keys = TokenKeys::load(&data_dir, secret.as_deref(), None).map_err(|e| anyhow::anyhow!("token keys: {e}"))?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let token = keys.mint(&user, role, ttl, now);
    if url {
        println!("{}/signin#token={token}", base_url.trim_end_matches('/'));
    } else {
        println!("{token}");
    }
    Ok(())
}
