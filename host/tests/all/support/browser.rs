//! Headless Chromium (Debian's package, installed by scripts/test.sh), as the page tests use it.

use super::workspace;
use std::process::Command;

/// Runs headless Chromium on `url` with `extra` flags, after the page's scripts and their
/// fetches ran; returns what it printed (the DOM, with `--dump-dom`).
pub fn chromium(url: &str, extra: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--virtual-time-budget=8000",
            "--window-size=1300,1400",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .output()
        .expect(
            "chromium is not installed: scripts/test.sh installs it (apt-get install chromium)",
        );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The DOM of `url` after its scripts ran.
pub fn rendered_dom(url: &str) -> String {
    chromium(url, &["--dump-dom".to_string()])
}

/// Saves a screenshot of `url` as `target/test-artifacts/<file>` (never committed).
pub fn screenshot(url: &str, file: &str) {
    let artifacts = workspace().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    chromium(
        url,
        &[format!("--screenshot={}", artifacts.join(file).display())],
    );
}
