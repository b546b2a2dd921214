//! `[smtp]`: the mail server dispatch e-mails leave through.

use serde::Deserialize;
use toml::Spanned;

use crate::config::SecretString;
use crate::diag::{Check, Problem};

#[derive(Debug, Clone)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub from: String,
    pub username: Option<String>,
    pub password: Option<SecretString>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSmtp {
    host: String,
    port: Option<u16>,
    from: Spanned<String>,
    username: Option<String>,
    password: Option<String>,
    password_env: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
}

impl Check {
    pub(crate) fn smtp(&mut self, s: RawSmtp) -> Smtp {
        let password = self.secret("password", &s.password, &s.password_env, &s.password_file);
        if s.from
            .get_ref()
            .parse::<lettre::message::Mailbox>()
            .is_err()
        {
            self.push(
                Problem::new(
                    s.from.span(),
                    format!("from `{}` is not a mailbox", s.from.get_ref()),
                )
                .hint("write \"seguard central <central@example.org>\""),
            );
        }
        Smtp {
            host: s.host,
            port: s.port.unwrap_or(25),
            from: s.from.into_inner(),
            username: s.username,
            password,
        }
    }
}
