//! Transport security shared by every role: TLS for the MQTT clients (the gateway's ingest, its
//! central publisher, central's intake) and for central's HTTPS server, through rustls with the
//! ring provider; secrets read from the environment or a file; and why a broker refused us.
//!
//! Certificates and keys are read while the config is validated, so `seguard check` reports an
//! unreadable or empty PEM file at its line, and a running client never reads files.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rumqttc::{ConnectReturnCode, ConnectionError};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use toml::Spanned;

use crate::diag::Problem;

/// A `[...tls]` table of an MQTT broker, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMqttTls {
    /// PEM file with the CA certificate(s) the broker's certificate must be signed by.
    pub ca_file: Spanned<String>,
    /// PEM certificate (chain) this client shows, for brokers that require client certificates.
    pub client_cert: Option<Spanned<String>>,
    /// PEM private key of `client_cert`.
    pub client_key: Option<Spanned<String>>,
}

/// TLS towards an MQTT broker, ready to use: the files are read and checked.
#[derive(Clone)]
pub struct MqttTls {
    pub ca_file: PathBuf,
    pub client_cert: Option<PathBuf>,
    pub client_config: Arc<rustls::ClientConfig>,
    /// SHA-256 over the CA, client certificate and key files as read at load, so that a
    /// reload notices a file whose content changed under the same name.
    pub files_digest: [u8; 32],
}

impl PartialEq for MqttTls {
    /// The same files with the same content (the client config is built from them).
    fn eq(&self, other: &Self) -> bool {
        self.ca_file == other.ca_file
            && self.client_cert == other.client_cert
            && self.files_digest == other.files_digest
    }
}

impl fmt::Debug for MqttTls {
    /// Names the files only: the client config holds the private key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttTls")
            .field("ca_file", &self.ca_file)
            .field("client_cert", &self.client_cert)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{path}` holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("`{path}` holds no PEM private key")]
    NoKey { path: PathBuf },
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_pem(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Every certificate in a PEM file; at least one.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_pem(path)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_pem(path)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })?
        .ok_or_else(|| TlsError::NoKey {
            path: path.to_owned(),
        })
}

/// A client config that trusts only the CAs in `ca_file` and, when given, shows a client
/// certificate.
pub fn client_config(
    ca_file: &Path,
    client: Option<(&Path, &Path)>,
) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in load_certs(ca_file)? {
        roots.add(cert)?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    Ok(match client {
        Some((cert, key)) => builder.with_client_auth_cert(load_certs(cert)?, load_key(key)?)?,
        None => builder.with_no_client_auth(),
    })
}

/// A server config for HTTPS (HTTP/2 and HTTP/1.1) from a PEM certificate chain and its key.
pub fn server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(load_certs(cert)?, load_key(key)?)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Validates a raw TLS table; relative paths are relative to `config_dir`.
pub fn validate_mqtt_tls(raw: &RawMqttTls, config_dir: &Path) -> Result<MqttTls, Vec<Problem>> {
    let path = |s: &Spanned<String>| config_dir.join(s.get_ref());
    let ca_file = path(&raw.ca_file);
    let client = match (&raw.client_cert, &raw.client_key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        (Some(one), None) | (None, Some(one)) => {
            return Err(vec![Problem::new(
                one.span(),
                "client_cert and client_key go together",
            )
            .hint(
                "give both PEM files, or neither when the broker needs no client certificate",
            )]);
        }
    };
    // Place a file problem at the key that names the file.
    let locate = |e: TlsError| {
        let span = match &e {
            TlsError::Read { path: p, .. }
            | TlsError::NoCertificate { path: p }
            | TlsError::NoKey { path: p } => [
                Some(&raw.ca_file),
                raw.client_cert.as_ref(),
                raw.client_key.as_ref(),
            ]
            .into_iter()
            .flatten()
            .find(|s| path(s) == *p)
            .map(|s| s.span()),
            TlsError::Rustls(_) => None,
        };
        Problem::new(span.or(Some(raw.ca_file.span())), format!("tls: {e}"))
            .hint("give PEM files: the CA that signed the broker's certificate, and this client's certificate and key")
    };
    let client_paths = client.map(|(c, k)| (path(c), path(k)));
    let config = client_config(
        &ca_file,
        client_paths
            .as_ref()
            .map(|(c, k)| (c.as_path(), k.as_path())),
    )
    .map_err(|e| vec![locate(e)])?;
    let mut files = vec![ca_file.clone()];
    if let Some((cert, key)) = &client_paths {
        files.extend([cert.clone(), key.clone()]);
    }
    let files_digest = digest(&files).map_err(|e| vec![locate(e)])?;
    Ok(MqttTls {
        ca_file,
        client_cert: client_paths.map(|(c, _)| c),
        client_config: Arc::new(config),
        files_digest,
    })
}

/// SHA-256 over the contents of `files`, each preceded by its length.
fn digest(files: &[PathBuf]) -> Result<[u8; 32], TlsError> {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for file in files {
        let bytes = read_pem(file)?;
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(&bytes);
    }
    Ok(hash.finalize().into())
}

/// A secret given inline, in an environment variable (`*_env`) or in a file (`*_file`, its
/// trailing newline removed). At most one of them; `what` names the key in messages.
pub fn secret(
    what: &str,
    inline: &Option<String>,
    env: &Option<Spanned<String>>,
    file: &Option<Spanned<String>>,
    config_dir: &Path,
) -> Result<Option<SecretString>, Problem> {
    let given =
        usize::from(inline.is_some()) + usize::from(env.is_some()) + usize::from(file.is_some());
    if given > 1 {
        let span = env.as_ref().or(file.as_ref()).map(Spanned::span);
        return Err(Problem::new(
            span,
            format!("give {what} only once: inline, as `{what}_env` or as `{what}_file`"),
        )
        .hint(format!(
            "keep `{what}_env` or `{what}_file` and remove the others"
        )));
    }
    match (inline, env, file) {
        (None, Some(var), None) => match std::env::var(var.get_ref()) {
            Ok(value) => Ok(Some(value.into())),
            Err(_) => Err(Problem::new(
                var.span(),
                format!("environment variable `{}` is not set", var.get_ref()),
            )
            .hint("export it before starting seguard, or remove the *_env key")),
        },
        (None, None, Some(path)) => {
            let full = config_dir.join(path.get_ref());
            match std::fs::read_to_string(&full) {
                Ok(text) => Ok(Some(text.trim_end_matches(['\r', '\n']).to_owned().into())),
                Err(e) => Err(Problem::new(
                    path.span(),
                    format!("cannot read {what}_file `{}`: {e}", full.display()),
                )
                .hint("the file holds the secret alone; readable by the seguard user only")),
            }
        }
        (Some(value), _, _) => Ok(Some(value.clone().into())),
        (None, _, _) => Ok(None),
    }
}

/// Sets the credentials and the TLS transport of an MQTT client.
pub fn secure_mqtt(
    options: &mut rumqttc::MqttOptions,
    username: Option<&str>,
    password: Option<&SecretString>,
    tls: Option<&MqttTls>,
) {
    if let Some(user) = username {
        let password = password.map(|p| p.expose_secret().to_owned());
        options.set_credentials(user, password.unwrap_or_default());
    }
    if let Some(tls) = tls {
        options.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(tls.client_config.clone()),
        ));
    }
}

/// Why a broker refused this client, when the error says so: an untrusted broker certificate,
/// a refused client certificate, or refused credentials. `None` for other failures (the broker
/// is down, the network is gone), which are retried without a verdict.
pub fn refusal(error: &ConnectionError) -> Option<&'static str> {
    if let ConnectionError::ConnectionRefused(code) = error {
        return Some(match code {
            ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized => {
                "the broker refused the username or password: check username and password_env / password_file"
            }
            ConnectReturnCode::BadClientId => "the broker refused the client id",
            _ => "the broker refused the connection",
        });
    }
    match rustls_cause(error)? {
        rustls::Error::InvalidCertificate(_) => Some(
            "the broker's certificate is not trusted: it is not signed by tls.ca_file, or does not name this host",
        ),
        rustls::Error::AlertReceived(_) => Some(
            "the broker refused the TLS handshake, most likely our client certificate: check tls.client_cert and tls.client_key against the broker's CA",
        ),
        _ => Some("the TLS handshake with the broker failed"),
    }
}

/// The rustls error somewhere in an error's chain; I/O errors wrap it without naming it as a
/// source, so their inner error is looked at too.
fn rustls_cause<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        current = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

/// Logs at ERROR, with the reason, when `error` says that `broker` refused this client, and
/// returns whether it did; other connection errors are left to the caller.
pub fn log_refusal(broker: &str, host: &str, port: u16, error: &ConnectionError) -> bool {
    let Some(reason) = refusal(error) else {
        return false;
    };
    tracing::error!(broker, host, port, error = %error, "{broker} refused the connection: {reason}");
    true
}

/// An `https` table as written: serve HTTPS instead of plain HTTP.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttps {
    /// PEM certificate chain of the server, leaf first.
    pub cert_file: Spanned<String>,
    /// PEM private key of the certificate.
    pub key_file: Spanned<String>,
}

/// HTTPS for a server, ready to use: the files are read and checked.
#[derive(Clone)]
pub struct Https {
    pub cert_file: PathBuf,
    pub server_config: Arc<rustls::ServerConfig>,
}

impl fmt::Debug for Https {
    /// Names the certificate file only: the server config holds the private key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Https")
            .field("cert_file", &self.cert_file)
            .finish_non_exhaustive()
    }
}

/// Validates an `https` table; relative paths are relative to `config_dir`.
pub fn validate_https(raw: &RawHttps, config_dir: &Path) -> Result<Https, Problem> {
    let cert_file = config_dir.join(raw.cert_file.get_ref());
    let key_file = config_dir.join(raw.key_file.get_ref());
    let config = server_config(&cert_file, &key_file).map_err(|e| {
        let span = match &e {
            TlsError::NoKey { .. } => raw.key_file.span(),
            TlsError::Read { path, .. } if *path == key_file => raw.key_file.span(),
            _ => raw.cert_file.span(),
        };
        Problem::new(span, format!("https: {e}"))
            .hint("give the PEM certificate chain (leaf first) and its private key")
    })?;
    Ok(Https {
        cert_file,
        server_config: Arc::new(config),
    })
}

/// Two secrets are the same when their texts are.
pub fn same_secret(a: &Option<SecretString>, b: &Option<SecretString>) -> bool {
    use secrecy::ExposeSecret;
    match (a, b) {
        (Some(a), Some(b)) => a.expose_secret() == b.expose_secret(),
        (None, None) => true,
        _ => false,
    }
}

impl crate::diag::Check {
    /// A secret given inline, as `{what}_env` or as `{what}_file`.
    pub fn secret(
        &mut self,
        what: &str,
        inline: &Option<String>,
        env: &Option<Spanned<String>>,
        file: &Option<Spanned<String>>,
    ) -> Option<SecretString> {
        secret(what, inline, env, file, &self.config_dir).unwrap_or_else(|problem| {
            self.push(problem);
            None
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spanned(text: &str) -> Option<Spanned<String>> {
        #[derive(Deserialize)]
        struct Key {
            key: Spanned<String>,
        }
        let key: Key = toml::from_str(&format!("key = \"{text}\"")).expect("toml");
        Some(key.key)
    }

    /// Inline value, `_env` key, `_file` key → the secret or the problem's message.
    type Case<'a> = (
        &'a Option<String>,
        Option<Spanned<String>>,
        Option<Spanned<String>>,
        Result<Option<&'a str>, &'a str>,
    );

    #[test]
    fn a_secret_comes_from_one_place() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("pw"), "from-file\n").expect("writing");
        std::env::set_var("SEGUARD_TLS_UNIT_TEST_SECRET", "from-env");
        let inline = Some("inline".to_owned());
        let cases: [Case; 6] = [
            (&inline, None, None, Ok(Some("inline"))),
            (
                &None,
                spanned("SEGUARD_TLS_UNIT_TEST_SECRET"),
                None,
                Ok(Some("from-env")),
            ),
            (&None, None, spanned("pw"), Ok(Some("from-file"))),
            (&None, None, None, Ok(None)),
            (
                &None,
                spanned("SEGUARD_TLS_UNIT_TEST_UNSET"),
                None,
                Err("environment variable `SEGUARD_TLS_UNIT_TEST_UNSET` is not set"),
            ),
            (
                &inline,
                None,
                spanned("pw"),
                Err("give password only once: inline, as `password_env` or as `password_file`"),
            ),
        ];
        for (inline, env, file, expected) in cases {
            let got = secret("password", inline, &env, &file, dir.path());
            let got = got
                .as_ref()
                .map(|s| s.as_ref().map(|s| s.expose_secret()))
                .map_err(|p| p.message.as_str());
            assert_eq!(
                got, expected,
                "for inline {inline:?}, env {env:?}, file {file:?}"
            );
        }
    }
}
