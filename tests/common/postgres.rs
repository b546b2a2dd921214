//! PostgreSQL for tests: `initdb` and `postgres` in a temp dir on a free loopback port, run as
//! the `postgres` user, or `nobody` (PostgreSQL refuses to run as root). Needs the server binaries (Debian
//! `postgresql`; `tests/run` installs it) on PATH or in /usr/lib/postgresql/*/bin.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::{free_port, wait_until, Process};

pub struct Postgres {
    pub port: u16,
    pub dir: tempfile::TempDir,
    bin: PathBuf,
    process: Option<Process>,
    /// Whether commits wait for the disk (the server's default). Off for tests, which time
    /// nothing; on for benches, which compare it with SQLite's full sync.
    durable: bool,
}

fn find_bin(name: &str) -> PathBuf {
    if let Ok(out) = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
    {
        let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !path.is_empty() {
            return PathBuf::from(path);
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin").join(name))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found
        .pop()
        .unwrap_or_else(|| panic!("{name} not found: install Debian `postgresql` (tests/run does)"))
}

/// Runs a command as the `postgres` user when we are root.
fn as_postgres(program: &PathBuf) -> Command {
    if running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", server_user(), "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// The account the server runs as when the tests run as root: `postgres` (Debian's package
/// creates it), else `nobody`.
fn server_user() -> &'static str {
    let has_postgres = Command::new("id")
        .arg("postgres")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if has_postgres {
        "postgres"
    } else {
        "nobody"
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false)
}

impl Postgres {
    /// A server for tests: `fsync=off`, since no test times it and a crash of the machine
    /// takes the test's data with it anyway.
    pub fn start() -> Postgres {
        Self::start_with(false)
    }

    /// A server for benches: commits are flushed to disk (`fsync=on`, the default), as in
    /// production and as SQLite's full sync is.
    pub fn start_durable() -> Postgres {
        Self::start_with(true)
    }

    fn start_with(durable: bool) -> Postgres {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("data dir");
        if running_as_root() {
            let status = Command::new("chown")
                .args(["-R", server_user()])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown of the PostgreSQL temp dir failed");
        }
        let initdb = find_bin("initdb");
        let out = as_postgres(&initdb)
            .args([
                "-D",
                data.to_str().expect("utf-8"),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ])
            .output()
            .expect("running initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bin = initdb.parent().expect("bin dir").to_owned();
        let mut pg = Postgres {
            port: free_port(),
            dir,
            bin,
            process: None,
            durable,
        };
        pg.restart();
        pg
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn restart(&mut self) {
        self.stop();
        let data = self.dir.path().join("data");
        let postgres = self.bin.join("postgres");
        let port = self.port.to_string();
        let mut args: Vec<String> = Vec::new();
        let program = if running_as_root() {
            args.extend(["-u", server_user(), "--"].map(String::from));
            args.push(postgres.display().to_string());
            "runuser".to_owned()
        } else {
            postgres.display().to_string()
        };
        args.extend(
            [
                "-D",
                data.to_str().expect("utf-8"),
                "-p",
                &port,
                "-h",
                "127.0.0.1",
                "-k",
                self.dir.path().to_str().expect("utf-8"),
                "-c",
                "max_connections=50",
            ]
            .map(String::from),
        );
        // What the server spent, statement by statement, for a bench that asks
        // (`SEGUARD_PG_STATS=1`, benches/city.rs).
        if std::env::var_os("SEGUARD_PG_STATS").is_some() {
            args.extend(
                [
                    "-c",
                    "shared_preload_libraries=pg_stat_statements",
                    "-c",
                    "pg_stat_statements.track=all",
                ]
                .map(String::from),
            );
        }
        if !self.durable {
            args.extend(["-c", "fsync=off"].map(String::from));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let process = Process::spawn(
            "postgres",
            &program,
            &args,
            self.dir.path().join("postgres.log"),
        );
        let port = self.port;
        wait_until("postgres to listen", Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        self.process = Some(process);
    }

    pub fn stop(&mut self) {
        if self.process.take().is_some() {
            let _ = as_postgres(&self.bin.join("pg_ctl"))
                .args([
                    "-D",
                    self.dir.path().join("data").to_str().expect("utf-8"),
                    "stop",
                    "-m",
                    "immediate",
                ])
                .output();
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
