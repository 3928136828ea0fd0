//! The one broker-reachability check every broker test uses: a test that needs a broker and
//! finds none fails (with how to start one), it never skips.
#![allow(dead_code)]

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Whether any of `addrs` (`host:port`) accepts a TCP connection within 2 s.
pub fn any_reachable<S: AsRef<str>>(addrs: &[S]) -> bool {
    addrs.iter().any(|b| {
        b.as_ref()
            .trim()
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok())
    })
}

/// `addrs`, after asserting one answers; the panic says how to start the broker.
pub fn require(addrs: Vec<String>, how: &str) -> Vec<String> {
    assert!(
        any_reachable(&addrs),
        "no Kafka broker at {}: run {how}",
        addrs.join(",")
    );
    addrs
}
