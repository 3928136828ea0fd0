//! What the network transports share: bootstrap broker lists and bounded TCP connects.

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};

/// The non-empty, trimmed entries of `config.brokers`; a config error naming `transport`
/// when there are none.
pub(crate) fn bootstrap_brokers(config: &Config, transport: &str) -> Result<Vec<String>> {
    let brokers: Vec<String> = config
        .brokers
        .iter()
        .map(|b| b.trim().to_string())
        .filter(|b| !b.is_empty())
        .collect();
    if brokers.is_empty() {
        return Err(Error::config(
            "brokers",
            format!("{:?}", config.brokers),
            format!("the {transport} transport needs at least one broker (host:port)"),
        ));
    }
    Ok(brokers)
}

/// Resolves `broker` (`host:port`) and opens a TCP connection within `timeout` per address;
/// a [`ErrorKind::Connection`] error naming the broker and why otherwise.
pub(crate) fn connect_within(broker: &str, timeout: Duration) -> Result<TcpStream> {
    let addrs: Vec<SocketAddr> = broker
        .to_socket_addrs()
        .map_err(|e| {
            Error::new(
                ErrorKind::Connection,
                format!("cannot resolve broker address: {e}"),
            )
            .with_broker(broker)
        })?
        .collect();
    let mut last = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, timeout.max(Duration::from_millis(1))) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    let why = match last {
        Some(e) if e.kind() == io::ErrorKind::TimedOut => {
            format!("no TCP connection within {timeout:?} (connect_timeout)")
        }
        Some(e) => format!("TCP connect failed: {e}"),
        None => "the address resolved to nothing".to_string(),
    };
    Err(Error::new(ErrorKind::Connection, why).with_broker(broker))
}
