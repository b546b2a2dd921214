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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { file } => match seguard::config::load(&file) {
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
        },
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
