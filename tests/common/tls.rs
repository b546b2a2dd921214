//! TLS for tests: a throwaway PKI made with the `openssl` CLI (Debian `openssl`), mosquitto with
//! a TLS listener that requires client certificates and a password file (made with
//! `mosquitto_passwd`), and a log capture for the code under test.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use super::{free_port, wait_for_port, Process};

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl: {e}; is it installed? run tests/run"));
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

const CA_CONF: &str = "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = {cn}\n\
    [v3_ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
    subjectKeyIdentifier = hash\n";

/// A CA in `dir` named `name` (`{name}.pem` and `{name}.key`) with the common name `cn`.
fn make_ca(dir: &Path, name: &str, cn: &str) {
    std::fs::write(dir.join("ca.cnf"), CA_CONF.replace("{cn}", cn)).expect("writing ca.cnf");
    let (pem, key) = (format!("{name}.pem"), format!("{name}.key"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-config",
            "ca.cnf",
            "-extensions",
            "v3_ca",
            "-keyout",
            &key,
            "-out",
            &pem,
        ],
    );
}

/// A leaf certificate `{name}.pem` / `{name}.key` signed by CA `ca`, with extensions `ext`.
fn make_leaf(dir: &Path, ca: &str, name: &str, subject: &str, ext: &str) {
    let ext_file = format!("{name}.ext");
    std::fs::write(dir.join(&ext_file), ext).expect("writing extensions");
    let (csr, key, pem) = (
        format!("{name}.csr"),
        format!("{name}.key"),
        format!("{name}.pem"),
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            subject,
            "-keyout",
            &key,
            "-out",
            &csr,
        ],
    );
    let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext_file,
            "-out",
            &pem,
        ],
    );
}

const SERVER_EXT: &str = "basicConstraints = CA:FALSE\nsubjectAltName = IP:127.0.0.1\n\
    extendedKeyUsage = serverAuth\n";
const CLIENT_EXT: &str = "basicConstraints = CA:FALSE\nextendedKeyUsage = clientAuth\n";

/// Two CAs and their certificates, all in one temp dir:
/// - `ca` signs `server` (for 127.0.0.1) and `client`;
/// - `other-ca`, unknown to everyone, signs `other-server` and `other-client`.
pub struct TestPki {
    pub dir: tempfile::TempDir,
}

impl TestPki {
    pub fn generate() -> TestPki {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        make_ca(d, "ca", "seguard test CA");
        make_ca(d, "other-ca", "stranger CA");
        make_leaf(d, "ca", "server", "/CN=127.0.0.1", SERVER_EXT);
        make_leaf(d, "ca", "client", "/CN=seguard test client", CLIENT_EXT);
        make_leaf(d, "other-ca", "other-server", "/CN=127.0.0.1", SERVER_EXT);
        make_leaf(d, "other-ca", "other-client", "/CN=stranger", CLIENT_EXT);
        TestPki { dir }
    }

    /// `name.pem` or `name.key` in the PKI dir.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }
}

/// mosquitto with one TLS listener: the server certificate `server_cert` (a name in the PKI),
/// client certificates signed by `ca` required, and only the given users with their passwords.
pub struct MosquittoTls {
    pub port: u16,
    pub dir: tempfile::TempDir,
    process: Process,
}

impl MosquittoTls {
    pub fn start(pki: &TestPki, server_cert: &str, users: &[(&str, &str)]) -> MosquittoTls {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let passwd = dir.path().join("passwd");
        for (i, (user, password)) in users.iter().enumerate() {
            let mut command = Command::new("mosquitto_passwd");
            command.arg("-b");
            if i == 0 {
                command.arg("-c");
            }
            let status = command
                .arg(&passwd)
                .args([user, password])
                .output()
                .expect("running mosquitto_passwd");
            assert!(status.status.success(), "mosquitto_passwd: {status:?}");
        }
        let conf = dir.path().join("mosquitto.conf");
        let mut text = std::fs::File::create(&conf).expect("writing mosquitto.conf");
        write!(
            text,
            "listener {port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n\
             require_certificate true\nallow_anonymous false\npassword_file {passwd}\n\
             user root\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n",
            ca = pki.path("ca.pem").display(),
            cert = pki.path(&format!("{server_cert}.pem")).display(),
            key = pki.path(&format!("{server_cert}.key")).display(),
            passwd = passwd.display(),
        )
        .expect("writing mosquitto.conf");
        let process = Process::spawn(
            "mosquitto",
            "mosquitto",
            &["-c", conf.to_str().expect("utf-8 path")],
            dir.path().join("mosquitto.log"),
        );
        wait_for_port("mosquitto (TLS)", port, &process);
        MosquittoTls { port, dir, process }
    }

    pub fn log_text(&self) -> String {
        self.process.log_text()
    }

    /// Publishes one message at QoS1 with `mosquitto_pub` (an independent client) over TLS
    /// with the PKI's good client certificate.
    pub fn publish(&self, pki: &TestPki, user: &str, password: &str, topic: &str, payload: &str) {
        let output = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q", "1"])
            .arg("--cafile")
            .arg(pki.path("ca.pem"))
            .arg("--cert")
            .arg(pki.path("client.pem"))
            .arg("--key")
            .arg(pki.path("client.key"))
            .args(["-u", user, "-P", password, "-t", topic, "-m", payload])
            .output()
            .expect("running mosquitto_pub");
        assert!(
            output.status.success(),
            "mosquitto_pub failed: {}\nbroker log:\n{}",
            String::from_utf8_lossy(&output.stderr),
            self.log_text()
        );
    }
}

/// Everything the code under test logs while the capture is the default subscriber of the
/// current thread (a current-thread runtime keeps all tasks on it).
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Installs the capture for this thread until the guard drops.
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(self.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log lock")).into_owned()
    }
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
