//! [`Security`]: how this transport's connections are opened (plain TCP or TLS, and the SASL
//! credentials [`Connection`](super::conn::Connection) authenticates with), prepared once per
//! transport from [`config::Security`]; and [`Stream`], the byte stream of one connection.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

#[cfg(feature = "sasl")]
use crate::config::Sasl;
use crate::config::{self, SecurityProtocol};
use crate::error::{Error, ErrorKind, Result};
use crate::transport::net::connect_within;

/// The security of every connection of one transport: checked, CA bundle loaded.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct Security {
    protocol: SecurityProtocol,
    #[cfg(feature = "tls")]
    tls: Option<super::tls::Connector>,
    #[cfg(feature = "sasl")]
    sasl: Option<Sasl>,
}

impl Security {
    /// Checks `config` (a protocol needing a feature not compiled in is an
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) error) and, for TLS, loads the CA
    /// bundle (an error naming `security.tls.ca_pem_path` when it cannot be read).
    pub fn new(config: &config::Security) -> Result<Self> {
        config.validate()?;
        Ok(Security {
            protocol: config.protocol,
            #[cfg(feature = "tls")]
            tls: if config.protocol.uses_tls() {
                let defaults = config::TlsConfig::default();
                let tls = config.tls.as_ref().unwrap_or(&defaults);
                Some(super::tls::Connector::new(tls)?)
            } else {
                None
            },
            #[cfg(feature = "sasl")]
            sasl: config.sasl.clone().filter(|_| config.protocol.uses_sasl()),
        })
    }

    /// The SASL credentials to authenticate with, if the protocol uses SASL.
    #[cfg(feature = "sasl")]
    pub fn sasl(&self) -> Option<&Sasl> {
        self.sasl.as_ref()
    }

    /// `e` (a failed ApiVersions exchange on a new connection) with a hint when the broker
    /// hung up: the listener may expect another security protocol than the one configured.
    pub fn hint(&self, e: Error) -> Error {
        if e.kind() != ErrorKind::Connection {
            return e;
        }
        let e = e.detached();
        let hint = format!(
            "{} (security.protocol is {}: does this listener expect it?)",
            e.message(),
            self.protocol
        );
        let mut hinted = Error::new(e.kind(), hint);
        if let Some(b) = &e.context().broker {
            hinted = hinted.with_broker(b.clone());
        }
        hinted
    }

    /// Opens a TCP connection to `addr` within `connect_timeout` and, for TLS, completes the
    /// TLS handshake by `deadline`.
    pub fn connect(
        &self,
        addr: &str,
        connect_timeout: Duration,
        deadline: Instant,
    ) -> Result<Stream> {
        let tcp = connect_within(addr, connect_timeout)?;
        let _ = tcp.set_nodelay(true);
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return Ok(Stream::Tls(Box::new(tls.handshake(tcp, addr, deadline)?)));
        }
        let _ = deadline;
        Ok(Stream::Plain(tcp))
    }
}

/// The bytes of one connection: plain TCP or TLS over TCP. Reads and writes block for at
/// most the timeouts set on the TCP socket underneath.
pub(super) enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS (rustls) over TCP.
    #[cfg(feature = "tls")]
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            #[cfg(feature = "tls")]
            Stream::Tls(s) => &s.sock,
        }
    }

    /// Whether writes may stay buffered until [`flush`](Write::flush) (TLS).
    pub fn buffers_writes(&self) -> bool {
        !matches!(self, Stream::Plain(_))
    }

    /// Bounds each read of the socket underneath.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp().set_read_timeout(timeout)
    }

    /// Bounds each write to the socket underneath.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp().set_write_timeout(timeout)
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.write(buf),
        }
    }

    /// For TLS: hands every encrypted byte still buffered to the socket.
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.flush(),
        }
    }
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Stream::Plain(_) => "Plain",
            #[cfg(feature = "tls")]
            Stream::Tls(_) => "Tls",
        };
        f.debug_tuple(kind)
            .field(&self.tcp().peer_addr().ok())
            .finish()
    }
}
