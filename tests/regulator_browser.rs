//! The regulator's pages in headless Chromium: the risk ranking with its reasons and export,
//! the maintenance-unit scorecards in both languages and their printable report, on the fleet of
//! `common/regulator_fleet.rs`. Screenshots go to target/screenshots/regulator/.
//! Needs Debian `chromium` and `npm ci` (playwright-core); tests/run provides both.

mod common;
#[path = "common/regulator_fleet.rs"]
mod fleet;

use std::path::Path;

use seguard::central::config::{parse, token_hash};
use seguard::central::Central;

const REGULATOR: &str = "regulator-token";

fn config_text(db: &Path) -> String {
    format!(
        r#"
[central]
instance = "regulator-browser"
http_listen = "127.0.0.1:0"
[store]
url = "sqlite://{db}"
[[gateway]]
id = "gw1"
token_sha256 = "{gw}"
[[token]]
role = "regulator"
name = "inspector-li"
sha256 = "{regulator}"
{tables}"#,
        db = db.display(),
        gw = token_hash("gw1-token"),
        regulator = token_hash(REGULATOR),
        tables = fleet::central_tables(),
    )
}

#[tokio::test]
async fn ranked_list_and_scorecards_in_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let config = parse(&config_text(&dir.path().join("c.db")), Path::new("r.toml")).unwrap();
    let central = Central::start(config).await.unwrap();
    fleet::write(&central.store, &central.config).await;
    let results = common::browser::run_script(
        "regulator.mjs",
        vec![
            ("BASE_URL", format!("http://{}", central.addr)),
            ("REGULATOR_TOKEN", REGULATOR.into()),
            (
                "SCREENSHOTS",
                root.join("target/screenshots/regulator")
                    .display()
                    .to_string(),
            ),
        ],
    )
    .await;
    assert_eq!(results["grades"]["Slow Lifts"], "D");
    assert_eq!(results["risk_order"][0], "s1");
    assert_eq!(results["csv_lines"], 3);
    central.stop().await;
}
