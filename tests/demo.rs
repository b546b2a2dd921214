//! `seguard demo` as a new user runs it: one command, no servers, a trapped passenger within
//! the first minute, a dispatch for it, the map showing it red in headless Chromium (screenshot
//! in target/screenshots/demo/), and a clean exit on Ctrl-C.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{eventually, free_port};
use serde_json::Value;

async fn get_json(url: &str, token: &str) -> Option<Value> {
    let response = reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_shows_a_trapped_passenger_and_a_dispatch_then_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (mqtt, http, gateway) = (free_port(), free_port(), free_port());
    let log_path = dir.path().join("demo.log");
    let mut demo = Command::new(env!("CARGO_BIN_EXE_seguard"))
        .args(["demo", "--trapped-after-s", "2", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--mqtt-port", &mqtt.to_string()])
        .args(["--http-port", &http.to_string()])
        .args(["--gateway-port", &gateway.to_string()])
        .stdout(std::fs::File::create(dir.path().join("demo.out")).unwrap())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .expect("starting seguard demo");
    let central = format!("http://127.0.0.1:{http}");

    // The car is trapped at 2 s; the rule's delay outside the door zone is 30 s.
    let alarms = eventually(
        "a trapped alarm at central",
        Duration::from_secs(90),
        || async {
            let alarms = get_json(
                &format!("{central}/api/v1/alarms"),
                seguard::demo::REGULATOR_TOKEN,
            )
            .await?;
            let trapped = alarms
                .as_array()?
                .iter()
                .any(|a| a["trapped"] == true && a["equipment"] == "lift-3");
            trapped.then_some(alarms)
        },
    )
    .await;
    let trapped = alarms
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["trapped"] == true)
        .unwrap();
    assert_eq!(trapped["severity"], "critical");
    assert_eq!(trapped["gateway"], "gw-demo");

    let dispatches = eventually("a dispatch for it", Duration::from_secs(10), || async {
        let d = get_json(
            &format!("{central}/api/v1/dispatches"),
            seguard::demo::REGULATOR_TOKEN,
        )
        .await?;
        // The generated history (src/demo/history.rs) holds dispatches of its own.
        let live = d
            .as_array()?
            .iter()
            .find(|d| d["elevator"]["equipment_id"] == "lift-3")?;
        Some(live.clone())
    })
    .await;
    let dispatch = &dispatches;
    assert_eq!(dispatch["elevator"]["equipment_id"], "lift-3");
    assert_eq!(
        dispatch["maintenance_unit"]["name"],
        "Shenlong Elevator Service"
    );
    assert_eq!(dispatch["status"], "occurred");

    // Every elevator is on the map, not only the one that raised an alarm: the gateway's
    // retained registry reached central. One page of the largest size holds the demo's
    // equipment: as many as counted.
    let equipment = get_json(
        &format!("{central}/api/v1/equipment?limit=500"),
        seguard::demo::REGULATOR_TOKEN,
    )
    .await
    .unwrap();
    let counts = get_json(
        &format!("{central}/api/v1/equipment/counts"),
        seguard::demo::REGULATOR_TOKEN,
    )
    .await
    .unwrap();
    assert_eq!(
        counts["equipment"],
        equipment.as_array().unwrap().len(),
        "{counts}"
    );
    // Twelve elevators, a boiler, an autoclave, a filling station and a cylinder on the demo's
    // gateway (the generated history has a gateway of its own).
    let live: Vec<&Value> = (equipment.as_array().unwrap().iter())
        .filter(|e| e["gateway"] == "gw-demo")
        .collect();
    assert_eq!(live.len(), 16);
    let placed = (equipment.as_array().unwrap().iter())
        .filter(|e| e["display"].is_array())
        .count();
    let lift3 = equipment
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "lift-3")
        .unwrap();
    assert_eq!(lift3["state"], "trapped");
    assert_eq!(equipment[0]["state"], "trapped", "worst state first");

    // The other kinds within two minutes of start: the boiler past its nameplate limit, the
    // autoclave's door opened under pressure, an expired and an unlabelled cylinder refused.
    let alarms = eventually(
        "boiler and autoclave alarms",
        Duration::from_secs(120),
        || async {
            let alarms = get_json(
                &format!("{central}/api/v1/alarms"),
                seguard::demo::REGULATOR_TOKEN,
            )
            .await?;
            let rules: Vec<String> = alarms
                .as_array()?
                .iter()
                .map(|a| a["rule"].as_str().unwrap_or_default().to_owned())
                .collect();
            let all = ["vessel.high_high", "vessel.door_interlock"]
                .iter()
                .all(|r| rules.iter().any(|x| x == r));
            all.then_some(rules)
        },
    )
    .await;
    eprintln!("alarm rules: {alarms:?}");
    let labelling = eventually("both refusals counted", Duration::from_secs(60), || async {
        let i = get_json(
            &format!("{central}/api/v1/indicators"),
            seguard::demo::REGULATOR_TOKEN,
        )
        .await?;
        let l = i["cylinder_labelling"].clone();
        (l["seen"].as_i64()? >= 5).then_some(l)
    })
    .await;
    assert!(
        labelling["labelled"].as_i64().unwrap() < labelling["seen"].as_i64().unwrap(),
        "the unlabelled cylinder counts: {labelling}"
    );
    let expired = get_json(
        &format!("{central}/api/v1/cylinders/LPG-0005/fills"),
        seguard::demo::REGULATOR_TOKEN,
    )
    .await
    .unwrap();
    assert_eq!(expired[0]["accepted"], false, "{expired}");
    assert_eq!(
        expired[0]["rejections"][0], "inspection_expired",
        "{expired}"
    );

    // The map in headless Chromium shows the trapped elevator red, among all that have a
    // position (a cylinder travels and has none).
    let screenshots =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots/demo");
    let results = common::browser::run_script(
        "demo_map.mjs",
        vec![
            ("BASE_URL", central.clone()),
            ("REGULATOR_TOKEN", seguard::demo::REGULATOR_TOKEN.into()),
            ("TRAPPED", "lift-3".into()),
            ("MARKERS", placed.to_string()),
            ("SCREENSHOTS", screenshots.display().to_string()),
        ],
    )
    .await;
    assert_eq!(results["trapped"]["colour"], "rgb(214, 40, 40)");

    let out = std::fs::read_to_string(dir.path().join("demo.out")).unwrap();
    assert!(
        out.contains(&format!("http://127.0.0.1:{http}/")),
        "the dashboard address is printed:\n{out}"
    );

    let pid = demo.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let status = tokio::task::spawn_blocking(move || demo.wait())
        .await
        .unwrap()
        .unwrap();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "Ctrl-C ends the demo cleanly; log:\n{log}"
    );
    // Telemetry went to the line-protocol files, since no InfluxDB was given.
    let files = seguard::uplink::linefile::files(&dir.path().join("data/telemetry")).unwrap();
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(text
        .lines()
        .any(|l| l.starts_with("elevator,site=demo-district,gateway=gw-demo,equipment=lift-3 ")));
}
