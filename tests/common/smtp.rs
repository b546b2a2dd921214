//! A tiny SMTP sink for tests: accepts every message on a loopback port and hands each one over
//! as (recipients, text: the headers as sent, the body decoded). Enough of RFC 5321 for lettre: EHLO/HELO, MAIL, RCPT, DATA, RSET,
//! NOOP, QUIT.

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

#[derive(Debug, Clone)]
pub struct Mail {
    pub to: Vec<String>,
    pub text: String,
}

pub struct SmtpSink {
    pub port: u16,
    pub mails: mpsc::UnboundedReceiver<Mail>,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the SMTP sink");
        let port = listener.local_addr().expect("sink address").port();
        let (tx, mails) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                    let mut to = Vec::new();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let upper = line.to_ascii_uppercase();
                        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO")
                        {
                            b"250 sink\r\n"
                        } else if upper.starts_with("RCPT TO:") {
                            to.push(line[8..].trim().trim_matches(['<', '>']).to_owned());
                            b"250 ok\r\n"
                        } else if upper.starts_with("DATA") {
                            let _ = write.write_all(b"354 go on\r\n").await;
                            let mut text = String::new();
                            while let Ok(Some(l)) = lines.next_line().await {
                                if l == "." {
                                    break;
                                }
                                text.push_str(l.strip_prefix('.').unwrap_or(&l));
                                text.push('\n');
                            }
                            let _ = tx.send(Mail {
                                to: std::mem::take(&mut to),
                                text: decoded(&text),
                            });
                            b"250 queued\r\n"
                        } else if upper.starts_with("QUIT") {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            return;
                        } else {
                            b"250 ok\r\n"
                        };
                        if write.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        SmtpSink { port, mails, task }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The message with its body decoded (the headers kept as sent), so that a test reads the text
/// a mail client shows: lettre sends Chinese text as quoted-printable or base64.
fn decoded(raw: &str) -> String {
    use base64::Engine as _;
    let Some((headers, body)) = raw.split_once("\n\n") else {
        return raw.to_owned();
    };
    let encoding = |name: &str| {
        headers
            .lines()
            .any(|h| h.eq_ignore_ascii_case(&format!("content-transfer-encoding: {name}")))
    };
    let bytes = if encoding("base64") {
        let compact: String = body.split_whitespace().collect();
        base64::engine::general_purpose::STANDARD
            .decode(compact)
            .ok()
    } else if encoding("quoted-printable") {
        quoted_printable::decode(body, quoted_printable::ParseMode::Robust).ok()
    } else {
        None
    };
    match bytes {
        Some(bytes) => format!("{headers}\n\n{}", String::from_utf8_lossy(&bytes)),
        None => raw.to_owned(),
    }
}
