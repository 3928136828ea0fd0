//! SASL authentication (cargo feature `sasl`) on a freshly opened connection, right after
//! ApiVersions and before any other request, as the Java client does it: SaslHandshake v1
//! names the mechanism, then SaslAuthenticate carries the mechanism's messages — one round
//! for PLAIN, two for SCRAM-SHA-256 / SCRAM-SHA-512.
//!
//! Re-authentication (KIP-368) is not done: when the broker gives the session a lifetime
//! (`connections.max.reauth.ms`), the connection counts as broken shortly before it ends and
//! its owner opens a new one.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;

use super::conn::Connection;
use super::errors::{code, code_name};
use super::scram::{Hash, ScramClient};
use crate::config::{Sasl, SaslMechanism};
use crate::error::{Error, ErrorKind, Result};

/// Authenticates `conn` with `sasl`, every exchange done by `deadline`. Refused credentials
/// and a mechanism the broker does not enable are [`ErrorKind::Authentication`] errors
/// naming the mechanism, the user and the broker. Returns the session's lifetime, if the
/// broker set one.
pub(super) fn authenticate(
    conn: &mut Connection,
    sasl: &Sasl,
    deadline: Instant,
) -> Result<Option<Duration>> {
    let mechanism = sasl.mechanism.name();
    let broker = conn.addr().to_string();
    let refused = |why: String| {
        Error::new(
            ErrorKind::Authentication,
            format!(
                "SASL {mechanism} authentication as {:?} failed: {why}",
                sasl.username
            ),
        )
        .with_broker(broker.clone())
    };
    let handshake =
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
    let answer = conn.call(&handshake, left(deadline))?;
    if answer.error_code != code::NONE {
        let offered: Vec<&str> = answer.mechanisms.iter().map(|m| m.as_str()).collect();
        return Err(refused(format!(
            "the broker answered {} (code {}); this listener offers {}",
            code_name(answer.error_code),
            answer.error_code,
            if offered.is_empty() {
                "no mechanism".to_string()
            } else {
                offered.join(", ")
            }
        )));
    }
    let mut lifetime = 0;
    let mut round = |bytes: Vec<u8>| -> Result<Bytes> {
        let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(bytes));
        let answer = conn.call(&request, left(deadline))?;
        if answer.error_code != code::NONE {
            let mut why = format!(
                "the broker answered {} (code {})",
                code_name(answer.error_code),
                answer.error_code
            );
            if let Some(m) = answer.error_message.as_deref().filter(|m| !m.is_empty()) {
                why.push_str(": ");
                why.push_str(m);
            }
            return Err(refused(why));
        }
        lifetime = answer.session_lifetime_ms;
        Ok(answer.auth_bytes)
    };
    let hash = match sasl.mechanism {
        SaslMechanism::Plain => None,
        SaslMechanism::ScramSha256 => Some(Hash::Sha256),
        SaslMechanism::ScramSha512 => Some(Hash::Sha512),
    };
    match hash {
        None => {
            // authzid NUL authcid NUL password (RFC 4616), with no authorization identity.
            let message = format!("\0{}\0{}", sasl.username, sasl.password);
            round(message.into_bytes())?;
        }
        Some(hash) => {
            let nonce = format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            );
            let mut scram = ScramClient::new(hash, &sasl.username, &sasl.password, &nonce);
            let server_first = round(scram.client_first().into_bytes())?;
            let client_final = scram.client_final(&server_first).map_err(&refused)?;
            let server_final = round(client_final.into_bytes())?;
            scram.verify_server_final(&server_final).map_err(&refused)?;
        }
    }
    Ok((lifetime > 0).then(|| Duration::from_millis(lifetime as u64)))
}

/// What is left of `deadline` (at least 1 ms: the call itself then reports the timeout).
fn left(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}
