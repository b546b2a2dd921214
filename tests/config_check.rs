//! `seguard check` on every example config (must pass) and on one fixture per kind of mistake
//! (must fail with exactly the messages in the fixture's `.expected` file).

use std::path::Path;
use std::process::Command;

fn check(path: &Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_seguard"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("check")
        .arg(path)
        .output()
        .expect("running seguard check");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn files(dir: &str, ext: &str) -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
        .unwrap_or_else(|e| panic!("reading {dir}: {e}"))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .map(|p| p.strip_prefix(root).expect("under the root").to_owned())
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_config_passes_the_check() {
    let examples = files("firmware-configs", "toml");
    assert!(examples.len() >= 2, "example configs are missing");
    for example in examples {
        let (ok, stdout, stderr) = check(&example);
        assert!(ok, "{} fails the check:\n{stderr}", example.display());
        assert!(stdout.contains(": ok: "), "{stdout}");
    }
}

#[test]
fn every_broken_config_fails_with_its_expected_messages() {
    let fixtures = files("tests/fixtures/config", "toml");
    assert!(fixtures.len() >= 10, "config fixtures are missing");
    for fixture in fixtures {
        let expected = std::fs::read_to_string(fixture.with_extension("expected"))
            .unwrap_or_else(|e| panic!("{}: no .expected file: {e}", fixture.display()));
        let (ok, _, stderr) = check(&fixture);
        assert!(!ok, "{} passed the check", fixture.display());
        assert_eq!(stderr, expected, "messages for {}", fixture.display());
    }
}

#[test]
fn an_unreadable_file_is_a_clear_error() {
    let (ok, _, stderr) = check(Path::new("tests/fixtures/config/no-such-file.toml"));
    assert!(!ok);
    assert!(
        stderr.starts_with("cannot read config tests/fixtures/config/no-such-file.toml: "),
        "{stderr}"
    );
}

/// A config the trapped rule would be blind with passes the check, with every warning in the
/// fixture's `.expected` file.
#[test]
fn every_warning_is_printed_and_the_check_passes() {
    let fixtures = files("tests/fixtures/config/warnings", "toml");
    assert!(!fixtures.is_empty(), "warning fixtures are missing");
    for fixture in fixtures {
        let expected = std::fs::read_to_string(fixture.with_extension("expected"))
            .unwrap_or_else(|e| panic!("{}: no .expected file: {e}", fixture.display()));
        let (ok, stdout, stderr) = check(&fixture);
        assert!(ok, "{} fails the check:\n{stderr}", fixture.display());
        assert!(stdout.contains(": ok: "), "{stdout}");
        assert_eq!(stderr, expected, "warnings for {}", fixture.display());
    }
}
