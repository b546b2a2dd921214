//! `[smtp]`: the mail server e-mail notifications of rescue dispatches go through.

use serde::Deserialize;
use toml::Spanned;

use crate::config::{Problem, SecretString};

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
pub(super) struct RawSmtp {
    pub(super) host: String,
    pub(super) port: Option<u16>,
    pub(super) from: Spanned<String>,
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
    pub(super) password_env: Option<Spanned<String>>,
    pub(super) password_file: Option<Spanned<String>>,
}

/// The `[smtp]` table, with its password already read.
pub(super) fn validate(
    s: RawSmtp,
    password: Option<SecretString>,
    problems: &mut Vec<Problem>,
) -> Smtp {
    if s.from
        .get_ref()
        .parse::<lettre::message::Mailbox>()
        .is_err()
    {
        problems.push(
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
