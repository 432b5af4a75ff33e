//! Locating the `nats-server` binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root (the folder holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the harness crate lives two levels below the workspace root")
        .to_path_buf()
}

/// The git-ignored folder where the set-up scripts install tools
/// (`SHARDLINE_TOOLS_DIR`, default `<workspace>/.tools`).
pub fn tools_dir() -> PathBuf {
    std::env::var_os("SHARDLINE_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".tools"))
}

/// The `nats-server` binary to use: `SHARDLINE_NATS_SERVER` if set, else the
/// one the set-up scripts installed under [`tools_dir`], else `nats-server` on
/// `PATH`. Panics with a clear message when none is found or it is older than 2.10.
pub fn nats_server_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let candidates: Vec<PathBuf> = std::env::var_os("SHARDLINE_NATS_SERVER")
            .map(PathBuf::from)
            .into_iter()
            .chain([tools_dir().join("venv/bin/nats-server")])
            .chain(std::iter::once(PathBuf::from("nats-server")))
            .collect();
        let mut seen = Vec::new();
        for candidate in candidates {
            match version_of(&candidate) {
                Some((major, minor)) if (major, minor) >= (2, 10) => return candidate,
                Some((major, minor)) => {
                    seen.push(format!("{} is {major}.{minor}", candidate.display()))
                }
                None => seen.push(format!("{} not runnable", candidate.display())),
            }
        }
        panic!(
            "no nats-server >= 2.10 found ({}); run the README's test command, which installs it \
             into .tools/, or set SHARDLINE_NATS_SERVER",
            seen.join("; ")
        )
    })
}

fn version_of(binary: &Path) -> Option<(u32, u32)> {
    let output = Command::new(binary).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    // "nats-server: v2.15.1"
    let version = text.rsplit(" v").next()?.trim();
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}
