//! Runs a script of `tests/browser/` in node (Debian `nodejs`), which drives headless Chromium
//! (Debian `chromium`) through playwright-core from `node_modules` (`npm ci`; tests/run does it).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Runs `tests/browser/{script}` with `env`, panics with its output when it fails, and returns
/// the JSON results it prints as its last line.
pub async fn run_script(script: &str, env: Vec<(&'static str, String)>) -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        root.join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing: run `npm ci` in {} (tests/run does)",
        root.display()
    );
    let script = root.join("tests/browser").join(script);
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .envs(env)
            .output()
            .expect("running node (Debian `nodejs`)")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "browser test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("{}")).unwrap()
}
