use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// seguard: telemetry gateway and alarm service for elevators, pressure vessels and gas cylinders.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "SEGUARD_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything on this machine: broker, simulated fleet, gateway and central service.
    Demo(DemoArgs),
    /// Run the edge gateway.
    Gateway {
        /// Site config file (TOML).
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Simulate a fleet of equipment (elevators over MQTT) with scenarios.
    Sim {
        /// Fleet file (TOML).
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Run the regional central service: intake, store, dashboard, rescue dispatch.
    Central {
        /// Central config file (TOML).
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Ask a running gateway to read its config file again, as SIGHUP does, and print the
    /// outcome; exits non-zero when the new config is refused or the gateway cannot be asked.
    Reload {
        /// The gateway's HTTP API, at its `http_listen`.
        #[arg(long, default_value = "http://127.0.0.1:9180")]
        api: String,
        /// Who asks, for the gateway's log.
        #[arg(long, env = "USER", default_value = "seguard-reload")]
        user: String,
        /// A file holding one of the gateway's API tokens (needed when its config has
        /// `[[gateway.api_token]]`). The environment variable SEGUARD_API_TOKEN works too.
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
    /// Check a config file and report every problem with file:line:column.
    Check {
        /// Config file to check.
        file: PathBuf,
    },
    /// Print the SHA-256 of a token read from standard input: what central configs keep
    /// (`token_sha256`, `sha256`) instead of the token itself.
    HashToken,
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Port of the embedded MQTT broker.
    #[arg(long, default_value_t = 1883)]
    mqtt_port: u16,
    /// Port of the central service (dashboard, map, rescue page).
    #[arg(long, default_value_t = 8080)]
    http_port: u16,
    /// Port of the gateway's API.
    #[arg(long, default_value_t = 9180)]
    gateway_port: u16,
    /// Where the generated configs, the store and the telemetry files go.
    #[arg(long, default_value = "seguard-demo")]
    data_dir: PathBuf,
    /// WGS-84 "lat,lon" the fleet is placed around.
    #[arg(long, default_value = "31.2304,121.4737", value_parser = parse_center)]
    center: (f64, f64),
    /// How many elevators to simulate.
    #[arg(long, default_value_t = 12)]
    elevators: u32,
    /// Seconds after start when a passenger gets trapped between floors.
    #[arg(long, default_value_t = 20.0)]
    trapped_after_s: f64,
    /// An InfluxDB 1.x URL for the time series; without it they go to files in the data dir.
    #[arg(long)]
    influx_url: Option<String>,
    /// The InfluxDB database, with --influx-url.
    #[arg(long, default_value = "seguard")]
    influx_db: String,
}

fn parse_center(text: &str) -> Result<(f64, f64), String> {
    let (lat, lon) = text
        .split_once(',')
        .ok_or_else(|| "write the centre as lat,lon".to_owned())?;
    let lat: f64 = lat
        .trim()
        .parse()
        .map_err(|_| format!("`{lat}` is not a latitude"))?;
    let lon: f64 = lon
        .trim()
        .parse()
        .map_err(|_| format!("`{lon}` is not a longitude"))?;
    if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
        return Err("lat is -90..90 and lon -180..180".to_owned());
    }
    Ok((lat, lon))
}

fn init_logs(format: LogFormat) {
    init_logs_with(format, "info");
}

/// `default_filter` applies unless RUST_LOG is set.
fn init_logs_with(format: LogFormat, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The kinds of config file `seguard check` knows.
enum ConfigKind {
    Gateway,
    Central,
    Fleet,
}

/// What kind of config a file is, from its top-level tables: a central config has `[central]`,
/// a fleet file `elevators` or a `seed`; anything else is checked as a gateway config, so its
/// errors speak of that format.
fn config_kind(text: &str) -> ConfigKind {
    match toml::from_str::<toml::Table>(text) {
        Ok(t) if t.contains_key("central") => ConfigKind::Central,
        Ok(t)
            if !t.contains_key("gateway")
                && (t.contains_key("elevators") || t.contains_key("seed")) =>
        {
            ConfigKind::Fleet
        }
        _ => ConfigKind::Gateway,
    }
}

fn check(file: &std::path::Path) -> ExitCode {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    if let ConfigKind::Central = config_kind(&text) {
        return match seguard::central::config::parse(&text, file) {
            Ok(central) => {
                println!(
                    "{}: ok: central {}: {} gateways, {} rescue units, {} tokens",
                    file.display(),
                    central.instance,
                    central.gateways.len(),
                    central.rescue_units.len(),
                    central.tokens.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    if let ConfigKind::Fleet = config_kind(&text) {
        return match seguard::sim::FleetConfig::parse(&text, file) {
            Ok(fleet) => {
                println!(
                    "{}: ok: fleet of site {}: {} elevators, {} scenarios",
                    file.display(),
                    fleet.site,
                    fleet.elevator_ids().len(),
                    fleet.scenario.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    match seguard::config::load(file) {
        Ok(config) => {
            for warning in &config.warnings {
                eprintln!("warning: {warning}");
            }
            println!("{}: ok: {}", file.display(), config.summary());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            let n = e.problems().len();
            if n > 0 {
                eprintln!(
                    "{}: {n} problem{}",
                    file.display(),
                    if n == 1 { "" } else { "s" }
                );
            }
            ExitCode::FAILURE
        }
    }
}

/// `seguard reload`: prints what the gateway says; the problems of a refused config go to
/// stderr, as `seguard check` prints them.
fn reload(api: &str, user: &str, token: Option<&str>) -> ExitCode {
    let runtime = tokio::runtime::Runtime::new().expect("starting the tokio runtime");
    match runtime.block_on(ask_reload(api, user, token)) {
        Ok(outcome) if outcome.applied => {
            println!("{}", outcome.message);
            ExitCode::SUCCESS
        }
        Ok(outcome) => {
            for problem in &outcome.problems {
                eprintln!("{problem}");
            }
            eprintln!("{}", outcome.message);
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("seguard reload: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The API token from `--token-file`, else from SEGUARD_API_TOKEN, else none.
fn api_token(file: Option<&std::path::Path>) -> Result<Option<String>, String> {
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read the token file {}: {e}", file.display()))?;
        return Ok(Some(text.trim().to_owned()));
    }
    Ok(std::env::var("SEGUARD_API_TOKEN").ok())
}

async fn ask_reload(
    api: &str,
    user: &str,
    token: Option<&str>,
) -> Result<seguard::gateway::ReloadOutcome, String> {
    let url = format!("{}/api/v1/reload", api.trim_end_matches('/'));
    // A reload waits for the intake to drain into the outbox: seconds, not minutes.
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| e.to_string())?;
    let mut request = client.post(&url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(serde_json::json!({ "user": user }).to_string())
        .send()
        .await
        .map_err(|e| {
            format!("cannot reach the gateway at {url}: {e}; is it running, and is --api its http_listen?")
        })?;
    let status = response.status();
    let body = response.text().await.map_err(|e| e.to_string())?;
    serde_json::from_str(&body).map_err(|_| format!("{url} answered {status}: {}", body.trim()))
}

/// Reads one token from standard input (so it stays out of the shell history and the process
/// list) and prints its hash.
fn hash_token() -> ExitCode {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        eprintln!("seguard hash-token: cannot read standard input: {e}");
        return ExitCode::FAILURE;
    }
    let token = line.trim_end_matches(['\r', '\n']);
    if token.is_empty() {
        eprintln!("seguard hash-token: give the token on standard input, for example: seguard hash-token < token.txt");
        return ExitCode::FAILURE;
    }
    println!("{}", seguard::auth::token_hash(token));
    ExitCode::SUCCESS
}

/// Runs `task` on a fresh tokio runtime and turns its result into the exit code.
fn run<Fut, E>(what: &str, task: Fut) -> ExitCode
where
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let runtime = tokio::runtime::Runtime::new().expect("starting the tokio runtime");
    match runtime.block_on(task) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "{what} failed");
            eprintln!("seguard {what}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A token cancelled by the first SIGINT or SIGTERM. Call inside the runtime.
fn stop_on_signal() -> tokio_util::sync::CancellationToken {
    let stop = tokio_util::sync::CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        seguard::shutdown::shutdown_signal().await;
        on_signal.cancel();
    });
    stop
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { file } => check(&file),
        Command::HashToken => hash_token(),
        Command::Sim { config } => {
            init_logs(cli.log_format);
            let fleet = match seguard::sim::FleetConfig::load(&config) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            run("sim", async {
                seguard::sim::run(fleet, stop_on_signal()).await
            })
        }
        Command::Demo(args) => {
            // The embedded broker logs harmless things (a bare TCP probe) at ERROR.
            init_logs_with(cli.log_format, "info,rumqttd=off");
            let loopback = std::net::Ipv4Addr::LOCALHOST;
            let options = seguard::demo::DemoOptions {
                mqtt: (loopback, args.mqtt_port).into(),
                central_http: (loopback, args.http_port).into(),
                gateway_http: (loopback, args.gateway_port).into(),
                data_dir: args.data_dir,
                center: args.center,
                elevators: args.elevators.max(3),
                trapped_after_s: args.trapped_after_s,
                influx: args.influx_url.map(|url| (url, args.influx_db)),
            };
            run("demo", async {
                seguard::demo::run(options, stop_on_signal()).await
            })
        }
        Command::Central { config } => {
            init_logs(cli.log_format);
            run("central", seguard::central::run(&config))
        }
        Command::Reload {
            api,
            user,
            token_file,
        } => match api_token(token_file.as_deref()) {
            Ok(token) => reload(&api, &user, token.as_deref()),
            Err(e) => {
                eprintln!("seguard reload: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Gateway { config: path } => {
            init_logs(cli.log_format);
            let config = match seguard::config::load(&path) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            for warning in &config.warnings {
                tracing::warn!(%warning, "config warning");
            }
            run("gateway", seguard::gateway::run(config, path))
        }
    }
}
