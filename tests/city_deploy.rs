//! deploy/city/ without a container engine (none runs here, and no image can be pulled): the
//! compose file parses as YAML (python3-yaml, an independent parser), has the city topology
//! (two EMQX nodes in one cluster with shared subscriptions, PostgreSQL, VictoriaMetrics, three
//! central instances of one config, each with its own host name), publishes ports on 127.0.0.1
//! only, mounts files that exist, and the central config it mounts passes `seguard check` as
//! each instance would see it.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn compose() -> Value {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/city/docker-compose.yml");
    // Merge keys (<<) resolved by the parser, as compose resolves them.
    let out = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(&file)
        .output()
        .expect("python3 runs (install python3-yaml)");
    assert!(
        out.status.success(),
        "{} does not parse: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from the parser")
}

#[test]
fn the_city_compose_file_has_the_scale_out_topology() {
    let compose = compose();
    let services = compose["services"].as_object().expect("services");
    let image = |name: &str| {
        services[name]["image"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert!(image("emqx1").starts_with("emqx/emqx:5") && image("emqx2") == image("emqx1"));
    assert!(image("postgres").starts_with("postgres:"));
    assert!(image("victoria-metrics").starts_with("victoriametrics/"));
    for node in ["emqx1", "emqx2"] {
        let env = &services[node]["environment"];
        assert_eq!(env["EMQX_CLUSTER__DISCOVERY_STRATEGY"], "static", "{node}");
        let seeds = env["EMQX_CLUSTER__STATIC__SEEDS"]
            .as_str()
            .unwrap_or_default();
        assert!(
            seeds.contains("emqx@emqx1.city") && seeds.contains("emqx@emqx2.city"),
            "{node}: {seeds}"
        );
        assert_eq!(
            env["EMQX_NODE__NAME"].as_str(),
            Some(
                format!(
                    "emqx@{}",
                    services[node]["hostname"].as_str().unwrap_or_default()
                )
                .as_str()
            )
        );
        let aliases = &services[node]["networks"]["default"]["aliases"];
        assert!(
            aliases
                .as_array()
                .is_some_and(|a| a.contains(&"emqx".into())),
            "{node}"
        );
    }
    let centrals: Vec<&str> = services
        .keys()
        .filter(|k| k.starts_with("central-"))
        .map(String::as_str)
        .collect();
    assert_eq!(centrals, ["central-a", "central-b", "central-c"]);
    let mut hostnames: Vec<&str> = centrals
        .iter()
        .map(|c| services[*c]["hostname"].as_str().expect("a host name"))
        .collect();
    hostnames.dedup();
    assert_eq!(hostnames.len(), 3, "each instance its own name");
    for c in &centrals {
        let s = &services[*c];
        assert_eq!(
            s["volumes"][0], "./central.toml:/etc/seguard/central.toml:ro",
            "{c}"
        );
        assert_eq!(s["command"][0], "central");
        assert!(s["environment"]["SEGUARD_STORE_URL"]
            .as_str()
            .is_some_and(|u| u.starts_with("postgres://") && u.contains("@postgres:5432/")));
    }
    let declared = compose["volumes"].as_object().expect("named volumes");
    for (name, service) in services {
        for port in service["ports"].as_array().into_iter().flatten() {
            assert!(
                port.as_str().is_some_and(|p| p.starts_with("127.0.0.1:")),
                "{name}: {port}"
            );
        }
        for volume in service["volumes"].as_array().into_iter().flatten() {
            let source = volume
                .as_str()
                .unwrap_or_default()
                .split(':')
                .next()
                .unwrap_or_default();
            if source.starts_with('.') {
                let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("deploy/city")
                    .join(source);
                assert!(path.exists(), "{name}: {source} does not exist");
            } else {
                assert!(
                    declared.contains_key(source),
                    "{name}: volume {source} undeclared"
                );
            }
        }
    }
}

#[test]
fn the_city_central_config_passes_check_as_each_instance() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/city/central.toml");
    for host in ["central-a", "central-b"] {
        let out = Command::new(env!("CARGO_BIN_EXE_seguard"))
            .arg("check")
            .arg(&file)
            .env("HOSTNAME", host)
            .env(
                "SEGUARD_STORE_URL",
                "postgres://seguard:x@postgres:5432/seguard",
            )
            .env("SEGUARD_MQTT_PASSWORD", "x")
            .env(
                "SEGUARD_GW_FUTIAN_0001_KEY",
                "check-only-key-0123456789abcdef0123456789",
            )
            .output()
            .expect("seguard check runs");
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn an_instance_takes_its_name_from_instance_env() {
    let text = "[central]\ninstance = \"fallback\"\ninstance_env = \"SEGUARD_TEST_INSTANCE_18\"\n";
    std::env::set_var("SEGUARD_TEST_INSTANCE_18", "central-b");
    let config = seguard::central::config::parse(text, Path::new("central.toml")).unwrap();
    assert_eq!(config.instance, "central-b");
    std::env::remove_var("SEGUARD_TEST_INSTANCE_18");
    let config = seguard::central::config::parse(text, Path::new("central.toml")).unwrap();
    assert_eq!(config.instance, "fallback");
}
