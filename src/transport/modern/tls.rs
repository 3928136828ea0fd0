//! TLS (cargo feature `tls`): the rustls client configuration, built once per transport from
//! [`TlsConfig`], and the bounded handshake that turns a TCP stream into a TLS stream.
//!
//! Certificates are checked against the CA bundle of `security.tls.ca_pem_path` (or
//! Mozilla's roots when none is given) and against the broker's host name (or
//! `security.tls.server_name`). Client certificates (mutual TLS) are not supported.

use std::fmt;
use std::io;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::errors::io_is_timeout;
use crate::config::TlsConfig;
use crate::error::{Error, ErrorKind, Result};

/// A prepared rustls client configuration and the name to check certificates against.
#[derive(Clone)]
pub(super) struct Connector {
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
    /// Where the trusted roots came from (for error messages).
    roots: String,
}

impl PartialEq for Connector {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.config, &other.config)
            && self.server_name == other.server_name
            && self.roots == other.roots
    }
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("roots", &self.roots)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// Loads the CA bundle (or Mozilla's roots) and builds the rustls configuration (TLS 1.2
    /// and 1.3, the `ring` provider). A bundle that cannot be read or holds no certificate
    /// is an [`ErrorKind::Config`] error naming `security.tls.ca_pem_path`.
    pub fn new(tls: &TlsConfig) -> Result<Self> {
        let mut store = RootCertStore::empty();
        let roots = match &tls.ca_pem_path {
            Some(path) => {
                let shown = path.display().to_string();
                let bad = |why: String| Error::config("security.tls.ca_pem_path", &shown, why);
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| bad(format!("cannot read the CA bundle: {e}")))?
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| bad(format!("not a PEM file: {e}")))?;
                if certs.is_empty() {
                    return Err(bad("holds no PEM certificate".to_string()));
                }
                for cert in certs {
                    store
                        .add(cert)
                        .map_err(|e| bad(format!("a certificate was rejected: {e}")))?;
                }
                format!("the CA bundle {shown}")
            }
            None => {
                store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                "Mozilla's root certificates (no security.tls.ca_pem_path)".to_string()
            }
        };
        let server_name = match &tls.server_name {
            Some(name) => Some(
                ServerName::try_from(name.clone())
                    .map_err(|e| Error::config("security.tls.server_name", name, e.to_string()))?,
            ),
            None => None,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::new(ErrorKind::Config, format!("TLS setup failed: {e}")))?
            .with_root_certificates(store)
            .with_no_client_auth();
        Ok(Connector {
            config: Arc::new(config),
            server_name,
            roots,
        })
    }

    /// Runs the TLS handshake on `tcp` (connected to `addr`) by `deadline`.
    pub fn handshake(
        &self,
        mut tcp: TcpStream,
        addr: &str,
        deadline: Instant,
    ) -> Result<StreamOwned<ClientConnection, TcpStream>> {
        let name = match &self.server_name {
            Some(n) => n.clone(),
            None => host_name(addr)?,
        };
        let shown = name.to_str().into_owned();
        let mut conn = ClientConnection::new(self.config.clone(), name).map_err(|e| {
            Error::new(ErrorKind::Config, format!("TLS setup failed: {e}")).with_broker(addr)
        })?;
        let bound = deadline.saturating_duration_since(Instant::now());
        while conn.is_handshaking() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left < Duration::from_micros(100) {
                return Err(self.failed(io::ErrorKind::TimedOut.into(), addr, &shown, bound));
            }
            let timeouts = tcp
                .set_read_timeout(Some(left))
                .and_then(|()| tcp.set_write_timeout(Some(left)));
            match timeouts.and_then(|()| conn.complete_io(&mut tcp)) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.failed(e, addr, &shown, bound)),
            }
        }
        Ok(StreamOwned::new(conn, tcp))
    }

    /// The error for a failed handshake with `addr`, checked against `name`.
    fn failed(&self, e: io::Error, addr: &str, name: &str, bound: Duration) -> Error {
        let tls_error = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .cloned();
        let (kind, why) = match tls_error {
            Some(rustls::Error::InvalidCertificate(c)) => (
                ErrorKind::Authentication,
                format!(
                    "the broker's certificate was rejected ({c:?}), checked for the name \
                     {name:?} against {}; see security.tls.ca_pem_path and \
                     security.tls.server_name",
                    self.roots
                ),
            ),
            Some(rustls::Error::InvalidMessage(m)) => (
                ErrorKind::Connection,
                format!("the broker does not speak TLS here ({m:?}): is this an SSL listener?"),
            ),
            Some(other) => (ErrorKind::Authentication, other.to_string()),
            None if io_is_timeout(&e) => {
                (ErrorKind::Timeout, format!("no answer within {bound:?}"))
            }
            None if e.kind() == io::ErrorKind::UnexpectedEof => (
                ErrorKind::Connection,
                "the broker closed the connection: is this an SSL listener?".to_string(),
            ),
            None => (ErrorKind::Connection, format!("connection failed: {e}")),
        };
        Error::new(kind, format!("TLS handshake failed: {why}"))
            .with_source(e)
            .with_broker(addr)
    }
}

/// The host part of `host:port` (`[v6]:port` too) as a TLS server name.
fn host_name(addr: &str) -> Result<ServerName<'static>> {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|e| {
        Error::new(
            ErrorKind::Config,
            format!("{host:?} is not a TLS server name ({e}); set security.tls.server_name"),
        )
        .with_broker(addr)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_come_from_the_broker_address() {
        assert_eq!(host_name("127.0.0.1:9093").unwrap().to_str(), "127.0.0.1");
        assert_eq!(
            host_name("kafka.example:9093").unwrap().to_str(),
            "kafka.example"
        );
        assert_eq!(host_name("[::1]:9093").unwrap().to_str(), "::1");
        assert!(host_name("bad name:1").is_err());
    }

    #[test]
    fn a_missing_or_empty_ca_bundle_is_a_config_error_naming_the_field() {
        let e = Connector::new(&TlsConfig::with_ca("/nonexistent/ca.pem")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("security.tls.ca_pem_path"), "{e}");
        let dir = std::env::temp_dir().join(format!("ks-empty-{}.pem", std::process::id()));
        std::fs::write(&dir, "not a certificate\n").unwrap();
        let e = Connector::new(&TlsConfig::with_ca(&dir)).unwrap_err();
        let _ = std::fs::remove_file(&dir);
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
    }

    #[test]
    fn a_handshake_with_a_silent_peer_times_out_by_the_deadline() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let tcp = TcpStream::connect(&addr).unwrap();
        let (_peer, _) = listener.accept().unwrap();
        let c = Connector::new(&TlsConfig::default()).unwrap();
        let started = Instant::now();
        let e = c
            .handshake(tcp, &addr, started + Duration::from_millis(300))
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2), "{e}");
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert!(e.to_string().contains("TLS handshake failed"), "{e}");
        assert_eq!(e.context().broker.as_deref(), Some(addr.as_str()));
    }

    #[test]
    fn without_a_bundle_mozilla_roots_are_trusted() {
        let c = Connector::new(&TlsConfig::default()).unwrap();
        assert!(format!("{c:?}").contains("Mozilla"), "{c:?}");
    }
}
