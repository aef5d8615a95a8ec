//! Stamps the git commit into the binary (`/health` `version`, `gotrue version`).

fn main() {
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        // Without a git checkout (a container build), the commit may be passed in.
        .or_else(|| std::env::var("GOTRUE_GIT_COMMIT").ok())
        .unwrap_or_default();
    println!("cargo:rustc-env=GOTRUE_GIT_COMMIT={commit}");
    println!("cargo:rerun-if-env-changed=GOTRUE_GIT_COMMIT");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
}
