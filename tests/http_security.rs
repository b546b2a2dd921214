//! Transport security and access control of the two HTTP APIs, on real sockets: central over
//! HTTPS with a certificate from a CA the test generates (openssl); the body limit (413), the
//! request timeout (408) and the per-token rate limit (429 with Retry-After), each counted in
//! /metrics; and secrets kept out of `seguard check`, Debug output, logs and /metrics.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use common::tls::{LogCapture, TestPki};
use seguard::auth::token_hash;
use seguard::central::Central;
use seguard::gateway::Gateway;

/// A central config with one regulator token per name in `tokens`; `extra` goes into
/// `[central]` (before any other table).
fn central_text(db: &Path, extra: &str, tokens: &[&str]) -> String {
    let mut text = format!(
        "[central]\ninstance = \"sec\"\nhttp_listen = \"127.0.0.1:0\"\n{extra}\n[store]\nurl = \"sqlite://{}\"\n",
        db.display()
    );
    for token in tokens {
        text.push_str(&format!(
            "[[token]]\nrole = \"regulator\"\nname = \"{token}\"\nsha256 = \"{}\"\n",
            token_hash(token)
        ));
    }
    text
}

async fn start_central(text: &str, config_path: &Path) -> Central {
    let config =
        seguard::central::config::parse(text, config_path).unwrap_or_else(|e| panic!("{e}"));
    Central::start(config).await.unwrap()
}

/// A gateway without broker or uplinks; `limits` is the `[gateway.http_limits]` body.
async fn start_gateway(limits: &str) -> Gateway {
    let text = format!(
        "[site]\nid = \"s1\"\nname = \"Site\"\n[outbox]\nkind = \"memory\"\n[gateway]\nid = \"gw1\"\nhttp_listen = \"127.0.0.1:0\"\n\
         [gateway.http_limits]\n{limits}\n\
         [[equipment]]\nid = \"lift-1\"\nkind = \"elevator\"\nregistration_code = \"31103101002016010001\"\n"
    );
    let config =
        seguard::config::parse(&text, Path::new("site.toml")).unwrap_or_else(|e| panic!("{e}"));
    Gateway::start(config).await.unwrap()
}

/// The value of one sample line of a Prometheus text body, 0 when absent.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// `{prefix}_http_rejected_total{reason}`: requests refused by the HTTP limits.
fn rejected(metrics: &str, prefix: &str, reason: &str) -> f64 {
    sample(
        metrics,
        &format!("{prefix}_http_rejected_total{{reason=\"{reason}\"}}"),
    )
}

#[tokio::test]
async fn central_serves_https_with_the_configured_certificate() {
    let pki = TestPki::generate();
    let db = pki.path("central.db");
    let text = central_text(
        &db,
        "[central.https]\ncert_file = \"server.pem\"\nkey_file = \"server.key\"",
        &["regulator-token"],
    );
    let central = start_central(&text, &pki.path("central.toml")).await;
    assert!(
        central.config.public_url.starts_with("https://"),
        "{}",
        central.config.public_url
    );

    let ca = reqwest::Certificate::from_pem(&std::fs::read(pki.path("ca.pem")).unwrap()).unwrap();
    let trusting = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let url = format!("https://{}/api/v1/whoami", central.addr);
    let response = trusting
        .get(&url)
        .bearer_auth("regulator-token")
        .send()
        .await
        .expect("HTTPS request with the test CA");
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("regulator"));
    // Over HTTPS the session cookie of a sign-in link is Secure: it never travels in clear.
    let no_redirect = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(pki.path("ca.pem")).unwrap()).unwrap(),
        )
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signed_in = no_redirect
        .get(format!("https://{}/?token=regulator-token", central.addr))
        .send()
        .await
        .unwrap();
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.ends_with("; Secure"), "{cookie}");

    // A client that does not trust the test CA refuses the server.
    let other_ca =
        reqwest::Certificate::from_pem(&std::fs::read(pki.path("other-ca.pem")).unwrap()).unwrap();
    let distrusting = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(other_ca)
        .build()
        .unwrap();
    let refused = distrusting.get(&url).send().await;
    assert!(
        refused.is_err(),
        "a client with another CA connected: {refused:?}"
    );

    // Plain HTTP on the HTTPS port gets no HTTP answer.
    let plain = reqwest::get(format!("http://{}/healthz", central.addr)).await;
    assert!(
        plain.as_ref().map_or(true, |r| r.status() != 200),
        "plain HTTP was served: {plain:?}"
    );
    central.stop().await;
}

/// Found by trying: no security header on any response, so a same-site page framed `/alarms`
/// signed in as a regulator.
#[tokio::test]
async fn central_responses_carry_security_headers_and_pages_hold_no_inline_script() {
    let dir = tempfile::tempdir().unwrap();
    let text = central_text(&dir.path().join("central.db"), "", &["regulator-token"]);
    let central = start_central(&text, &dir.path().join("central.toml")).await;
    let client = reqwest::Client::new();
    let base = format!("http://{}", central.addr);
    for (path, token, status, cache) in [
        ("/", None, 200, "no-store"),
        ("/alarms", None, 200, "no-store"),
        ("/rescue/abc", None, 200, "no-store"),
        ("/assets/seguard.js", None, 200, "max-age=3600"),
        ("/api/v1/whoami", Some("regulator-token"), 200, "no-store"),
        ("/api/v1/alarms", Some("regulator-token"), 200, "no-store"),
        ("/api/v1/equipment", None, 401, "no-store"),
        ("/no/such/page", None, 404, "no-store"),
    ] {
        let mut request = client.get(format!("{base}{path}"));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{path}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_else(|| panic!("{path} has no {name}"))
        };
        let csp = header("content-security-policy");
        for directive in [
            "default-src 'self'",
            "script-src 'self';",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
        assert_eq!(header("cache-control"), cache, "{path}");
    }
    // No inline script, event handler or style attribute in any page: the policy would block it.
    for path in ["/", "/alarms", "/indicators", "/rescue/abc"] {
        let html = client
            .get(format!("{base}{path}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let scripts: Vec<&str> = html.split("<script").skip(1).collect();
        assert!(!scripts.is_empty(), "{path}");
        for script in scripts {
            assert!(
                script.starts_with(" src=\"/assets/"),
                "{path}: <script{script}"
            );
        }
        for attribute in [" onclick=", " onload=", " onsubmit=", " style="] {
            assert!(!html.contains(attribute), "{path} holds{attribute}");
        }
    }
    central.stop().await;
}

/// Found by trying: `?token=` stayed in the address bar, in every Referer and in localStorage,
/// with no way to sign out.
#[tokio::test]
async fn a_token_link_becomes_an_http_only_cookie_and_sign_out_clears_it() {
    let dir = tempfile::tempdir().unwrap();
    let text = central_text(&dir.path().join("central.db"), "", &["regulator-token"]);
    let central = start_central(&text, &dir.path().join("central.toml")).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("http://{}", central.addr);
    let signed_in = client
        .get(format!("{base}/alarms?state=active&token=regulator-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status().as_u16(), 303);
    assert_eq!(signed_in.headers()["location"], "/alarms?state=active");
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        cookie,
        "seguard_token=regulator-token; Path=/; HttpOnly; SameSite=Strict"
    );
    let whoami = |cookie: String| {
        client
            .get(format!("{base}/api/v1/whoami"))
            .header("cookie", cookie)
            .send()
    };
    let me = whoami("seguard_token=regulator-token".into())
        .await
        .unwrap();
    assert_eq!(me.status().as_u16(), 200);
    assert!(me.text().await.unwrap().contains("\"regulator\""));
    // An unknown token is taken out of the address too, and signs nobody in.
    let unknown = client
        .get(format!("{base}/?token=guess"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 303);
    assert_eq!(unknown.headers()["location"], "/");
    assert!(unknown.headers().get("set-cookie").is_none());
    assert_eq!(
        whoami("seguard_token=guess".into())
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    // The rescue page takes its link parameter out too (an unknown link sets no link cookie).
    let rescue = client
        .get(format!(
            "{base}/rescue/d1?t=00ff&token=regulator-token&lang=zh"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(rescue.headers()["location"], "/rescue/d1?lang=zh");
    let cookies: Vec<&str> = rescue
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        cookies,
        ["seguard_token=regulator-token; Path=/; HttpOnly; SameSite=Strict"]
    );
    let out = client
        .post(format!("{base}/signout"))
        .header("cookie", "seguard_token=regulator-token")
        .send()
        .await
        .unwrap();
    assert_eq!(out.status().as_u16(), 303);
    assert_eq!(out.headers()["location"], "/");
    assert_eq!(
        out.headers()["set-cookie"],
        "seguard_token=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
    );
    assert_eq!(out.headers()["clear-site-data"], "\"storage\"");
    central.stop().await;
}

/// A trapped incident of lift `lift` from gw1, as a gateway posts it.
fn trapped(n: u32, lift: &str) -> serde_json::Value {
    let id = format!("00000000-0000-4000-8000-{n:012}");
    serde_json::json!({
        "schema": "seguard.incident.v1", "id": id, "gateway": "gw1",
        "site": { "id": "s1", "name": "Riverside", "address": "8 River Road" },
        "equipment": {
            "id": lift, "kind": "elevator", "name": format!("Lift {lift}"),
            "registration_code": "31103101002016010001", "rescue_code": "02417",
            "using_unit": "Riverside Property Co.",
            "maintenance_unit": { "name": "Shenlong Elevator Service", "phone": "+86-21-5555-0101" },
            "address": "8 River Road", "location": { "lat": 31.2, "lon": 121.5, "crs": "WGS-84" },
            "nameplate": {}, "next_inspection": "2027-03-31", "insured": true
        },
        "event": { "id": id, "equipment": lift, "rule": "elevator.trapped_at_level",
                   "severity": "critical", "transition": "raise",
                   "time": chrono::Utc::now().to_rfc3339(), "message": "trapped" }
    })
}

/// Found by trying: a rescue link's `?t=` stayed in the address bar (and in every Referer) for
/// as long as the page was open. It is exchanged for a cookie scoped to its dispatch.
#[tokio::test]
async fn a_rescue_link_becomes_a_cookie_of_its_own_dispatch() {
    let (tx, mut hooks) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
    let app = axum::Router::new().route(
        "/{*path}",
        axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(body);
                "ok"
            }
        }),
    );
    let hook_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_port = hook_listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(hook_listener, app).await.unwrap() });
    let dir = tempfile::tempdir().unwrap();
    let mut text = central_text(&dir.path().join("central.db"), "", &[]);
    text.push_str(&format!(
        "[[gateway]]\nid = \"gw1\"\ntoken_sha256 = \"{}\"\n\
         [[rescue_unit]]\nname = \"Shenlong Elevator Service\"\nphone = \"+86-21-5555-0101\"\n\
         webhook = \"http://127.0.0.1:{hook_port}/shenlong\"\n",
        token_hash("gw1-token")
    ));
    let central = start_central(&text, &dir.path().join("central.toml")).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("http://{}", central.addr);
    // Two trapped lifts, two dispatches, two links (as on one team's phone).
    let mut links = Vec::new();
    for (n, lift) in [(1, "lift-a"), (2, "lift-b")] {
        let r = client
            .post(format!("{base}/api/v1/intake/incidents"))
            .bearer_auth("gw1-token")
            .json(&trapped(n, lift))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
        let hook = tokio::time::timeout(Duration::from_secs(10), hooks.recv())
            .await
            .unwrap()
            .unwrap();
        let url = hook["rescue_url"].as_str().unwrap().to_owned();
        let (path, token) = url
            .split_once("/rescue/")
            .unwrap()
            .1
            .split_once("?t=")
            .unwrap();
        links.push((path.to_owned(), token.to_owned()));
    }
    let mut cookies = Vec::new();
    for (id, token) in &links {
        let opened = client
            .get(format!("{base}/rescue/{id}?t={token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(opened.status().as_u16(), 303);
        assert_eq!(opened.headers()["location"], format!("/rescue/{id}"));
        let cookie = opened.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert_eq!(
            cookie,
            format!(
                "seguard_link={token}; Path=/api/v1/dispatches/{id}; Max-Age=604800; HttpOnly; SameSite=Strict"
            )
        );
        cookies.push(format!("seguard_link={token}"));
        // The page at the address without the token is served as it is.
        let page = client
            .get(format!("{base}/rescue/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status().as_u16(), 200);
    }
    let step = |id: &str, cookie: Option<&str>| {
        let mut request = client
            .post(format!("{base}/api/v1/dispatches/{id}/status"))
            .json(&serde_json::json!({ "status": "responded", "note": "on our way" }));
        if let Some(c) = cookie {
            request = request.header("cookie", c.to_owned());
        }
        request.send()
    };
    let (first, second) = (&links[0].0, &links[1].0);
    // Another dispatch's cookie, or none, opens nothing; the dispatch's own cookie reads and acts.
    assert_eq!(step(first, None).await.unwrap().status().as_u16(), 401);
    assert_eq!(
        step(first, Some(&cookies[1]))
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    let read = client
        .get(format!("{base}/api/v1/dispatches/{first}"))
        .header("cookie", cookies[1].clone())
        .send()
        .await
        .unwrap();
    assert_eq!(read.status().as_u16(), 401);
    let taken = step(first, Some(&cookies[0])).await.unwrap();
    assert_eq!(
        taken.status().as_u16(),
        200,
        "{}",
        taken.text().await.unwrap()
    );
    let d: serde_json::Value = client
        .get(format!("{base}/api/v1/dispatches/{first}"))
        .header("cookie", cookies[0].clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["status"], "responded", "{d}");
    assert_eq!(d["access"]["can_act"], true, "{d}");
    assert_eq!(
        d["steps"].as_array().unwrap().last().unwrap()["actor"],
        "Shenlong Elevator Service (link)",
        "{d}"
    );
    // The second dispatch is untouched, and its own cookie still acts on it.
    assert_eq!(
        step(second, Some(&cookies[1]))
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    // A wrong link is taken out of the address too, and sets no cookie.
    let wrong = client
        .get(format!("{base}/rescue/{first}?t=00ff"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.headers()["location"], format!("/rescue/{first}"));
    assert!(wrong.headers().get("set-cookie").is_none());
    central.stop().await;
}

/// Found by trying: the ack and dispatch-step routes parsed the body first, so a request
/// without a token got 415 instead of 401.
#[tokio::test]
async fn actions_check_the_caller_before_the_body() {
    let dir = tempfile::tempdir().unwrap();
    let text = central_text(&dir.path().join("central.db"), "", &["regulator-token"]);
    let central = start_central(&text, &dir.path().join("central.toml")).await;
    let client = reqwest::Client::new();
    let base = format!("http://{}", central.addr);
    for (path, token, content_type, status) in [
        ("/api/v1/alarms/a1/ack", None, "text/plain", 401),
        ("/api/v1/alarms/a1/ack", Some("wrong"), "text/plain", 401),
        ("/api/v1/dispatches/d1/status", None, "text/plain", 401),
        (
            "/api/v1/dispatches/d1/status?t=00ff",
            None,
            "text/plain",
            401,
        ),
        (
            "/api/v1/alarms/a1/ack",
            Some("regulator-token"),
            "text/plain",
            415,
        ),
        (
            "/api/v1/alarms/a1/ack",
            Some("regulator-token"),
            "application/json",
            404,
        ),
    ] {
        let mut request = client
            .post(format!("{base}{path}"))
            .header("content-type", content_type)
            .body("{\"comment\": \"x\"}");
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status().as_u16(),
            status,
            "{path} with {token:?}, {content_type}"
        );
    }
    central.stop().await;
}

#[tokio::test]
async fn oversized_bodies_get_413_and_are_counted() {
    let gateway = start_gateway("max_body_bytes = 1024").await;
    let big = format!(
        "{{\"user\": \"op\", \"comment\": \"{}\"}}",
        "x".repeat(4096)
    );
    let client = reqwest::Client::new();
    let response = client
        .post(format!(
            "http://{}/api/v1/alarms/lift-1/r/ack",
            gateway.http_addr
        ))
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(
        rejected(&gateway.metrics.render(), "seguard", "too_large"),
        1.0
    );
    gateway.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let text = central_text(
        &dir.path().join("c.db"),
        "[central.http_limits]\nmax_body_bytes = 1024",
        &["regulator-token"],
    );
    let central = start_central(&text, Path::new("central.toml")).await;
    let response = client
        .post(format!("http://{}/api/v1/intake/incidents", central.addr))
        .bearer_auth("regulator-token")
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(
        rejected(&central.metrics.render(), "seguard_central", "too_large"),
        1.0
    );
    central.stop().await;
}

#[tokio::test]
async fn over_rate_gets_429_with_retry_after_per_token() {
    let dir = tempfile::tempdir().unwrap();
    let text = central_text(
        &dir.path().join("c.db"),
        "[central.http_limits]\nrate_per_s = 1\nrate_burst = 2",
        &["token-a", "token-b"],
    );
    let central = start_central(&text, Path::new("central.toml")).await;
    let client = reqwest::Client::new();
    let url = format!("http://{}/api/v1/whoami", central.addr);
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..3 {
        let response = client
            .get(&url)
            .bearer_auth("token-a")
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        if let Some(v) = response.headers().get("retry-after") {
            retry_after = Some(v.to_str().unwrap().parse::<u64>().unwrap());
        }
    }
    assert_eq!(statuses, [200, 200, 429]);
    assert_eq!(retry_after, Some(1), "Retry-After in whole seconds");
    // Another token has its own bucket.
    let other = client
        .get(&url)
        .bearer_auth("token-b")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    assert_eq!(
        rejected(&central.metrics.render(), "seguard_central", "rate_limited"),
        1.0
    );
    // The pages' session cookie of token-a draws from token-a's bucket, not a fresh one.
    let by_cookie = client
        .get(&url)
        .header("cookie", "seguard_token=token-a")
        .send()
        .await
        .unwrap();
    assert_eq!(by_cookie.status(), 429);
    // A refusal of the limits has the shape of every API error.
    let body: seguard::http_error::ErrorBody = by_cookie.json().await.unwrap();
    assert_eq!(body.reason, "rate_limited");
    // Made-up tokens open no bucket of their own: they count against the client's address.
    let mut made_up = Vec::new();
    for i in 0..3 {
        let response = client
            .get(&url)
            .bearer_auth(format!("made-up-{i}"))
            .send()
            .await
            .unwrap();
        made_up.push(response.status().as_u16());
    }
    assert_eq!(made_up, [401, 401, 429]);
    // The bucket refills at the configured rate.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = client
        .get(&url)
        .bearer_auth("token-a")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    central.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_body_never_arrives_gets_408() {
    let gateway = start_gateway("request_timeout_s = 0.5").await;
    let addr = gateway.http_addr;
    // Announce 100 bytes, send 10, then wait: the request times out on the server.
    let status = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            stream,
            "POST /api/v1/alarms/lift-1/r/ack HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"user\": "
        )
        .unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).unwrap();
        String::from_utf8_lossy(&head[9..12]).into_owned()
    })
    .await
    .unwrap();
    assert_eq!(status, "408");
    assert_eq!(
        rejected(&gateway.metrics.render(), "seguard", "timeout"),
        1.0
    );
    gateway.stop().await;
}

const MQTT_PASSWORD: &str = "mqtt-pw-5f3a9c";
const INFLUX_TOKEN: &str = "influx-token-8b2e71";
const CENTRAL_MQTT_PASSWORD: &str = "central-pw-c4d1e0";
const SMTP_PASSWORD: &str = "smtp-pw-9a7b3f";
const STORE_PASSWORD: &str = "store-pw-2d8e4b";

#[tokio::test]
async fn secrets_stay_out_of_check_output_debug_output_logs_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mqtt.pw"), format!("{MQTT_PASSWORD}\n")).unwrap();
    std::fs::write(dir.path().join("central-mqtt.pw"), CENTRAL_MQTT_PASSWORD).unwrap();
    // Environment variables are process-wide: each test of this file uses its own names.
    std::env::set_var("SEGUARD_TEST_INFLUX_TOKEN", INFLUX_TOKEN);
    std::env::set_var("SEGUARD_TEST_SMTP_PASSWORD", SMTP_PASSWORD);
    let unused_port = common::free_port();
    let site = dir.path().join("site.toml");
    std::fs::write(
        &site,
        format!(
            "[site]\nid = \"s1\"\nname = \"Site\"\n[gateway]\nid = \"gw1\"\nhttp_listen = \"127.0.0.1:0\"\nshutdown_flush_s = 1\n\
             [mqtt]\nport = {unused_port}\nusername = \"gw\"\npassword_file = \"mqtt.pw\"\nreconnect_min_ms = 50\n\
             [[uplink.influx]]\nname = \"v2\"\napi = \"v2\"\nurl = \"http://127.0.0.1:{unused_port}\"\norg = \"o\"\nbucket = \"b\"\n\
             token_env = \"SEGUARD_TEST_INFLUX_TOKEN\"\nflush_interval_ms = 50\n\
             [uplink.central]\n"
        ),
    )
    .unwrap();
    let central = dir.path().join("central.toml");
    std::fs::write(
        &central,
        format!(
            "[central]\ninstance = \"sec\"\n[store]\nurl = \"postgres://seguard:{STORE_PASSWORD}@127.0.0.1:5432/seguard\"\n[mqtt]\nport = {unused_port}\nusername = \"central\"\npassword_file = \"central-mqtt.pw\"\n\
             [smtp]\nhost = \"127.0.0.1\"\nfrom = \"central <c@example.org>\"\nusername = \"mail\"\npassword_env = \"SEGUARD_TEST_SMTP_PASSWORD\"\n"
        ),
    )
    .unwrap();
    let secrets = [
        MQTT_PASSWORD,
        INFLUX_TOKEN,
        CENTRAL_MQTT_PASSWORD,
        SMTP_PASSWORD,
        STORE_PASSWORD,
    ];
    let assert_clean = |what: &str, text: &str| {
        for secret in secrets {
            assert!(!text.contains(secret), "{what} shows a secret:\n{text}");
        }
    };

    for file in [&site, &central] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_seguard"))
            .arg("check")
            .arg(file)
            .env("SEGUARD_TEST_INFLUX_TOKEN", INFLUX_TOKEN)
            .env("SEGUARD_TEST_SMTP_PASSWORD", SMTP_PASSWORD)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{text}");
        assert_clean("seguard check", &text);
    }

    let site_config = seguard::config::load(&site).unwrap();
    let central_config = seguard::central::config::load(&central).unwrap();
    // The secrets were read: they are in the config, only never shown.
    let password = site_config
        .mqtt
        .as_ref()
        .unwrap()
        .password
        .as_ref()
        .unwrap();
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(password),
        MQTT_PASSWORD
    );
    let debug = format!("{site_config:?}\n{central_config:?}");
    assert!(debug.contains("REDACTED"), "{debug}");
    assert_clean("Debug output", &debug);

    let logs = LogCapture::default();
    let guard = logs.install();
    let gateway = Gateway::start(site_config).await.unwrap();
    // Let it fail to connect to the broker and to InfluxDB a few times.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let metrics = gateway.metrics.render();
    gateway.stop().await;
    drop(guard);
    let log = logs.text();
    assert!(log.contains("central uplink disconnected"), "{log}");
    assert_clean("the log", &log);
    assert_clean("/metrics", &metrics);
}

/// With `[[gateway.api_token]]` in the config, the gateway's actions (alarm acknowledgement,
/// shelving, reload) need one of the tokens; reads stay open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_actions_need_one_of_its_api_tokens() {
    let gateway = start_gateway(&format!(
        "\n[[gateway.api_token]]\nname = \"ops-desk\"\nsha256 = \"{}\"\n",
        token_hash("ops-secret")
    ))
    .await;
    let http = reqwest::Client::new();
    let ack = format!(
        "http://{}/api/v1/alarms/lift-1/no-such-rule/ack",
        gateway.http_addr
    );
    let body = r#"{"user":"li.wei","comment":"on my way"}"#;
    let post = |token: Option<&'static str>| {
        let mut request = http
            .post(&ack)
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(post(None).await.unwrap().status(), 401, "no token");
    let wrong = post(Some("guess")).await.unwrap();
    assert_eq!(wrong.status(), 401, "a wrong token");
    let text = wrong.text().await.unwrap();
    assert!(text.contains("gateway.api_token"), "{text}");
    // The right token gets through to the engine, which knows no such alarm.
    assert_eq!(post(Some("ops-secret")).await.unwrap().status(), 404);
    let reload = http
        .post(format!("http://{}/api/v1/reload", gateway.http_addr))
        .header("content-type", "application/json")
        .body(r#"{"user":"li.wei"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(reload.status(), 401, "reload needs a token too");
    let alarms = http
        .get(format!("http://{}/api/v1/alarms", gateway.http_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(alarms.status(), 200, "reads stay open");
    gateway.stop().await;
}
