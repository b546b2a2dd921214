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
    /// Check a config file and report every problem with file:line:column.
    Check {
        /// Config file to check.
        file: PathBuf,
    },
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// What kind of config a file is, from its top-level tables: a fleet file has `elevators` or a
/// `seed`; anything else is checked as a gateway config, so its errors speak of that format.
fn is_fleet_file(text: &str) -> bool {
    toml::from_str::<toml::Table>(text).is_ok_and(|t| {
        !t.contains_key("gateway") && (t.contains_key("elevators") || t.contains_key("seed"))
    })
}

fn check(file: &std::path::Path) -> ExitCode {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    if is_fleet_file(&text) {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { file } => check(&file),
        Command::Sim { config } => {
            init_logs(cli.log_format);
            let fleet = match seguard::sim::FleetConfig::load(&config) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            let runtime = tokio::runtime::Runtime::new().expect("starting the tokio runtime");
            let result = runtime.block_on(async {
                let stop = tokio_util::sync::CancellationToken::new();
                let on_signal = stop.clone();
                tokio::spawn(async move {
                    seguard::gateway::shutdown_signal().await;
                    on_signal.cancel();
                });
                seguard::sim::run(fleet, stop).await
            });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "sim failed");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Gateway { config } => {
            init_logs(cli.log_format);
            let config = match seguard::config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            let runtime = tokio::runtime::Runtime::new().expect("starting the tokio runtime");
            match runtime.block_on(seguard::gateway::run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "gateway failed");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
