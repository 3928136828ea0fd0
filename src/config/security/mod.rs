//! [`Security`]: how connections to brokers are protected and authenticated — TLS (cargo
//! feature `tls`) and SASL PLAIN / SCRAM-SHA-256 / SCRAM-SHA-512 (cargo feature `sasl`).
//! Only the modern transport speaks them; the `kafka` crate transport refuses any protocol
//! but [`SecurityProtocol::Plaintext`], and the in-memory transport ignores the section.
//!
//! ```
//! use kafka_sync::security::{Sasl, SaslMechanism, Security, SecurityProtocol, TlsConfig};
//! use kafka_sync::Config;
//!
//! let mut config = Config::default();
//! config.security = Security {
//!     protocol: SecurityProtocol::SaslSsl,
//!     tls: Some(TlsConfig::with_ca("/etc/kafka/ca.pem")),
//!     sasl: Some(Sasl::new(SaslMechanism::ScramSha512, "alice", "alice-secret")),
//! };
//! // Debug output never shows the password.
//! assert!(!format!("{config:?}").contains("alice-secret"));
//! # #[cfg(all(feature = "tls", feature = "sasl"))]
//! config.validate().unwrap();
//! ```

use std::fmt;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// How connections to brokers are carried, as Kafka's `security.protocol` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SecurityProtocol {
    /// Plain TCP, no authentication (`PLAINTEXT`). The default.
    #[default]
    Plaintext,
    /// TLS, no SASL (`SSL`). Needs the `tls` feature.
    Ssl,
    /// SASL authentication over plain TCP (`SASL_PLAINTEXT`). Needs the `sasl` feature.
    SaslPlaintext,
    /// SASL authentication over TLS (`SASL_SSL`). Needs the `tls` and `sasl` features.
    SaslSsl,
}

impl SecurityProtocol {
    /// Kafka's name for it: `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// The protocol named `name` (Kafka's spelling, any case), if there is one.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            SecurityProtocol::Plaintext,
            SecurityProtocol::Ssl,
            SecurityProtocol::SaslPlaintext,
            SecurityProtocol::SaslSsl,
        ]
        .into_iter()
        .find(|p| p.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether connections are wrapped in TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether connections authenticate with SASL.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The SASL mechanism, as Kafka's `sasl.mechanism` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SaslMechanism {
    /// `PLAIN`: the password goes to the broker as it is (use it over TLS only).
    Plain,
    /// `SCRAM-SHA-256` (RFC 5802 / 7677): the password never leaves the client.
    ScramSha256,
    /// `SCRAM-SHA-512`.
    ScramSha512,
}

impl SaslMechanism {
    /// Kafka's name for it: `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism named `name` (Kafka's spelling, any case), if there is one.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            SaslMechanism::Plain,
            SaslMechanism::ScramSha256,
            SaslMechanism::ScramSha512,
        ]
        .into_iter()
        .find(|m| m.name().eq_ignore_ascii_case(name.trim()))
    }
}

impl fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// TLS settings (for [`SecurityProtocol::Ssl`] and [`SecurityProtocol::SaslSsl`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsConfig {
    /// A PEM file of the certificate authorities that sign the brokers' certificates.
    /// Default: `None`, which trusts Mozilla's root certificates (as bundled by the
    /// `webpki-roots` crate) — right for a managed Kafka service with a public certificate,
    /// wrong for a self-signed one.
    pub ca_pem_path: Option<PathBuf>,
    /// The name the brokers' certificates are checked against. Default: `None`, the host part
    /// of each broker's address (a DNS name or an IP address, matched against the
    /// certificate's subject alternative names).
    pub server_name: Option<String>,
}

impl TlsConfig {
    /// Trusts the certificate authorities in the PEM file at `path`.
    pub fn with_ca(path: impl Into<PathBuf>) -> Self {
        TlsConfig {
            ca_pem_path: Some(path.into()),
            server_name: None,
        }
    }
}

/// SASL credentials (for [`SecurityProtocol::SaslPlaintext`] and
/// [`SecurityProtocol::SaslSsl`]). Its `Debug` output hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Sasl {
    /// The mechanism. No default.
    pub mechanism: SaslMechanism,
    /// The user name. No default.
    pub username: String,
    /// The password. No default.
    pub password: String,
}

impl Sasl {
    /// Credentials for `mechanism`.
    pub fn new(
        mechanism: SaslMechanism,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        Sasl {
            mechanism,
            username: username.into(),
            password: password.into(),
        }
    }
}

impl fmt::Debug for Sasl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sasl")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// How connections to brokers are protected and authenticated. Default: plain TCP, no
/// authentication.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Security {
    /// The protocol. Default: [`SecurityProtocol::Plaintext`].
    pub protocol: SecurityProtocol,
    /// TLS settings; used with `Ssl` and `SaslSsl` only (`None` there: the defaults of
    /// [`TlsConfig`]). Default: `None`.
    pub tls: Option<TlsConfig>,
    /// SASL credentials; required with `SaslPlaintext` and `SaslSsl`, refused otherwise.
    /// Default: `None`.
    pub sasl: Option<Sasl>,
}

impl Security {
    /// The section from `KAFKA_SECURITY_PROTOCOL`, `KAFKA_SASL_MECHANISM`,
    /// `KAFKA_SASL_USERNAME`, `KAFKA_SASL_PASSWORD`, `KAFKA_TLS_CA` and
    /// `KAFKA_TLS_SERVER_NAME` read through `lookup` (see [`Config::from_env`]); not validated.
    ///
    /// [`Config::from_env`]: crate::Config::from_env
    pub(crate) fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<Security> {
        let mut s = Security::default();
        if let Some(v) = lookup("KAFKA_SECURITY_PROTOCOL") {
            s.protocol = SecurityProtocol::from_name(&v).ok_or_else(|| {
                Error::config(
                    "KAFKA_SECURITY_PROTOCOL",
                    &v,
                    "expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
                )
            })?;
        }
        let (mechanism, username, password) = (
            lookup("KAFKA_SASL_MECHANISM"),
            lookup("KAFKA_SASL_USERNAME"),
            lookup("KAFKA_SASL_PASSWORD"),
        );
        if mechanism.is_some() || username.is_some() || password.is_some() {
            let expected = "expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512";
            let name = mechanism.ok_or_else(|| {
                Error::config(
                    "KAFKA_SASL_MECHANISM",
                    "",
                    format!("is not set: {expected}"),
                )
            })?;
            let mechanism = SaslMechanism::from_name(&name)
                .ok_or_else(|| Error::config("KAFKA_SASL_MECHANISM", &name, expected))?;
            s.sasl = Some(Sasl::new(
                mechanism,
                username.unwrap_or_default(),
                password.unwrap_or_default(),
            ));
        }
        let (ca, server_name) = (lookup("KAFKA_TLS_CA"), lookup("KAFKA_TLS_SERVER_NAME"));
        if ca.is_some() || server_name.is_some() {
            s.tls = Some(TlsConfig {
                ca_pem_path: ca.map(PathBuf::from),
                server_name,
            });
        }
        Ok(s)
    }

    /// Checks the section: the features the protocol needs were compiled in, credentials are
    /// there exactly when the protocol uses SASL, TLS settings only when it uses TLS.
    pub(crate) fn validate(&self) -> Result<()> {
        let p = self.protocol;
        if p.uses_tls() && !cfg!(feature = "tls") {
            return Err(Error::config(
                "security.protocol",
                p,
                "needs TLS, but kafka-sync was built without its `tls` feature",
            ));
        }
        if p.uses_sasl() && !cfg!(feature = "sasl") {
            return Err(Error::config(
                "security.protocol",
                p,
                "needs SASL, but kafka-sync was built without its `sasl` feature",
            ));
        }
        if let Some(tls) = &self.tls {
            if !p.uses_tls() {
                return Err(Error::config(
                    "security.tls",
                    format!("{tls:?}"),
                    format!("is set, but security.protocol is {p} (use SSL or SASL_SSL)"),
                ));
            }
            if let Some(path) = &tls.ca_pem_path {
                if path.as_os_str().is_empty() {
                    return Err(Error::config(
                        "security.tls.ca_pem_path",
                        "",
                        "cannot be empty (None trusts the Mozilla roots)",
                    ));
                }
            }
            if let Some(name) = &tls.server_name {
                if name.trim().is_empty() || name.contains(char::is_whitespace) {
                    return Err(Error::config(
                        "security.tls.server_name",
                        name,
                        "must be a DNS name or an IP address",
                    ));
                }
            }
        }
        match &self.sasl {
            None if p.uses_sasl() => Err(Error::config(
                "security.sasl",
                "None",
                format!(
                    "security.protocol {p} needs SASL credentials (mechanism, username, password)"
                ),
            )),
            Some(s) if !p.uses_sasl() => Err(Error::config(
                "security.sasl",
                format!("{s:?}"),
                format!("is set, but security.protocol is {p} (use SASL_PLAINTEXT or SASL_SSL)"),
            )),
            Some(s) if s.username.is_empty() => Err(Error::config(
                "security.sasl.username",
                "",
                "cannot be empty",
            )),
            Some(s) if s.password.is_empty() => Err(Error::config(
                "security.sasl.password",
                "",
                "cannot be empty",
            )),
            Some(s) if s.username.contains('\0') || s.password.contains('\0') => {
                Err(Error::config(
                    "security.sasl.username",
                    &s.username,
                    "the user name and password cannot hold NUL characters",
                ))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
