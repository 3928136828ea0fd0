//! [`Connection`]: one TCP connection to one broker, with request framing, correlation ids,
//! a deadline on every read and write, and the broker's API versions asked for on connect.
//!
//! The stream is plain TCP or TLS, and SASL authentication follows ApiVersions when the
//! transport's [`Security`] asks for them.
//!
//! Frames are `i32 size | header | body`. Requests on one connection are answered in order;
//! an answer with another correlation id, a short read or any I/O error leaves the
//! connection unusable ([`Connection::is_broken`]): its owner drops it and opens a new one.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

use super::api::{shapes, Api, BrokerVersions};
use super::errors::{code, code_error, codec_error, io_error};
use super::stream::{Security, Stream};
use crate::error::{Error, ErrorKind, Result};

/// The largest answer accepted unless [`Connection::limit_responses`] says otherwise (the
/// default of `Config::max_response_bytes`).
const MAX_FRAME: usize = 100 << 20;

/// The ApiVersions version asked first; brokers that do not know it answer in v0.
const API_VERSIONS_FIRST: i16 = 3;

/// A connection to one broker. Not shared: each owner (a producer session, a subscription,
/// the heartbeat thread, the admin client) has its own.
#[derive(Debug)]
pub(super) struct Connection {
    stream: Stream,
    addr: String,
    client_id: StrBytes,
    next_id: i32,
    versions: BrokerVersions,
    broken: bool,
    out: Vec<u8>,
    /// Memory answers are read into, reused from one answer to the next.
    answer: BytesMut,
    /// The time the last request was given (for error messages).
    bound: Duration,
    /// When the last request was sent.
    last_used: Instant,
    /// When the broker ends the SASL session (a little before), if it set a lifetime.
    session_ends: Option<Instant>,
    /// Largest answer accepted, checked against the announced size before allocating.
    max_frame: usize,
    /// The broker asked us (`throttle_time_ms`) not to send before this moment.
    throttled_until: Option<Instant>,
}

impl Connection {
    /// Connects to `addr` within `connect_timeout`, completes the TLS handshake if
    /// `security` asks for TLS, asks for the broker's API versions, then authenticates with
    /// SASL if `security` asks for it; each of the three within `request_timeout`.
    pub fn open(
        addr: &str,
        client_id: &str,
        security: &Security,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Connection> {
        let started = Instant::now();
        let stream = security.connect(addr, connect_timeout, started + request_timeout)?;
        let mut conn = Connection {
            stream,
            addr: addr.to_string(),
            client_id: StrBytes::from_string(client_id.to_string()),
            next_id: 1,
            versions: BrokerVersions::default(),
            broken: false,
            out: Vec::with_capacity(1024),
            answer: BytesMut::new(),
            bound: request_timeout,
            last_used: Instant::now(),
            session_ends: None,
            max_frame: MAX_FRAME,
            throttled_until: None,
        };
        conn.handshake(request_timeout)
            .map_err(|e| security.hint(e))?;
        #[cfg(feature = "sasl")]
        if let Some(sasl) = security.sasl() {
            let authenticated = Instant::now();
            let lifetime =
                super::sasl::authenticate(&mut conn, sasl, authenticated + request_timeout)?;
            conn.session_ends = lifetime.map(|l| authenticated + l.mul_f32(0.9));
        }
        Ok(conn)
    }

    /// Refuses answers bigger than `max` bytes (`Config::max_response_bytes`).
    pub fn limit_responses(&mut self, max: usize) {
        self.max_frame = max.max(64);
    }

    /// Holds the next request back for `ms` milliseconds (a quota's `throttle_time_ms`).
    pub fn throttle(&mut self, ms: i32) {
        if ms > 0 {
            let until = Instant::now() + Duration::from_millis(ms as u64);
            log::debug!("modern: broker {} throttles us for {ms} ms", self.addr);
            self.throttled_until = Some(until);
        }
    }

    /// The broker's address as it was dialled.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// How long since the last request was sent.
    pub fn idle_for(&self) -> Duration {
        self.last_used.elapsed()
    }

    /// Whether an earlier exchange failed half-way, or the broker is about to end the SASL
    /// session: the connection must not be used again.
    pub fn is_broken(&self) -> bool {
        self.broken || self.session_ends.is_some_and(|t| Instant::now() >= t)
    }

    /// The version of `R` to send to this broker (the highest both sides speak).
    pub fn version<R: Api>(&self) -> Result<i16> {
        self.versions
            .pick::<R>()
            .map_err(|e| e.with_broker(self.addr.clone()))
    }

    /// Sends `request` at the negotiated version and waits up to `bound` for the answer.
    pub fn call<R: Api>(&mut self, request: &R, bound: Duration) -> Result<R::Response> {
        let version = self.version::<R>()?;
        self.call_at(request, version, bound)
    }

    /// Sends `request` at `version` and waits up to `bound` for the answer.
    pub fn call_at<R: Api>(
        &mut self,
        request: &R,
        version: i16,
        bound: Duration,
    ) -> Result<R::Response> {
        let deadline = Instant::now() + bound;
        let id = self.send(request, version, deadline)?;
        self.receive::<R>(id, version, deadline)
    }

    /// Writes `request` at `version` (by `deadline`) without waiting for the answer; returns
    /// the correlation id to [`receive`](Self::receive) it with. For requests answered
    /// nothing (produce with acks 0) and for asking several brokers at once.
    pub fn send<R: Api>(&mut self, request: &R, version: i16, deadline: Instant) -> Result<i32> {
        if self.broken {
            return Err(self.broken_error());
        }
        if let Some(until) = self.throttled_until.take() {
            // Honour the broker's throttle, but never past the request's own deadline.
            let wait = until
                .min(deadline)
                .saturating_duration_since(Instant::now());
            std::thread::sleep(wait);
        }
        self.last_used = Instant::now();
        self.bound = deadline.saturating_duration_since(self.last_used);
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY as i16)
            .with_request_api_version(version)
            .with_correlation_id(id)
            .with_client_id(Some(self.client_id.clone()));
        self.out.clear();
        self.out.extend_from_slice(&[0; 4]);
        let encoded = header
            .encode(&mut self.out, R::header_version(version))
            .and_then(|()| request.encode(&mut self.out, version));
        if let Err(e) = encoded {
            let what = format!("encoding {} v{version}", R::NAME);
            return Err(codec_error(e, &what, &self.addr));
        }
        let size = (self.out.len() - 4) as i32;
        self.out[..4].copy_from_slice(&size.to_be_bytes());
        let out = std::mem::take(&mut self.out);
        let written = self.write_by(&out, deadline);
        self.out = out;
        written.map_err(|e| self.fail(e, R::NAME, "sending"))?;
        Ok(id)
    }

    /// Reads the answer to the request sent with correlation id `id` at `version`, by
    /// `deadline`.
    pub fn receive<R: Api>(
        &mut self,
        id: i32,
        version: i16,
        deadline: Instant,
    ) -> Result<R::Response> {
        let mut body =
            self.read_frame(id, R::Response::header_version(version), R::NAME, deadline)?;
        self.check_shape(R::KEY, version, &body)?;
        R::Response::decode(&mut body, version).map_err(|e| {
            self.broken = true;
            codec_error(
                e,
                &format!("decoding the {} v{version} answer", R::NAME),
                &self.addr,
            )
        })
    }

    /// ApiVersions: asks at v3; a broker that does not know v3 answers `UnsupportedVersion`
    /// in v0 with its ranges, which are taken from there.
    fn handshake(&mut self, bound: Duration) -> Result<()> {
        let deadline = Instant::now() + bound;
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("kafka-sync"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let id = self.send(&request, API_VERSIONS_FIRST, deadline)?;
        let mut body = self.read_frame(id, 0, "ApiVersions", deadline)?;
        let first_code = if body.len() >= 2 {
            i16::from_be_bytes([body[0], body[1]])
        } else {
            code::NONE
        };
        let version = if first_code == code::UNSUPPORTED_VERSION {
            0
        } else {
            API_VERSIONS_FIRST
        };
        self.check_shape(ApiKey::ApiVersions, version, &body)?;
        let answer = ApiVersionsResponse::decode(&mut body, version).map_err(|e| {
            self.broken = true;
            codec_error(e, "decoding the ApiVersions answer", &self.addr)
        })?;
        if answer.error_code != code::NONE && answer.error_code != code::UNSUPPORTED_VERSION {
            self.broken = true;
            return Err(code_error(answer.error_code, "ApiVersions").with_broker(self.addr.clone()));
        }
        self.versions = BrokerVersions::new(
            answer
                .api_keys
                .iter()
                .map(|k| (k.api_key, k.min_version, k.max_version)),
        );
        if self.versions.range(ApiKey::Metadata).is_none() {
            self.broken = true;
            return Err(Error::new(
                ErrorKind::UnsupportedBroker,
                "the ApiVersions answer lists no Metadata API: is this a Kafka broker?",
            )
            .with_broker(self.addr.clone()));
        }
        Ok(())
    }

    /// Refuses an answer whose arrays announce more entries than it has bytes, before
    /// `kafka-protocol` reserves memory for them (see [`shapes`]).
    fn check_shape(&mut self, key: ApiKey, version: i16, body: &[u8]) -> Result<()> {
        let Some(shape) = shapes::of_answer(key) else {
            return Ok(());
        };
        shapes::check(shape, version, body).map_err(|why| {
            self.broken = true;
            Error::new(
                ErrorKind::Broker,
                format!(
                    "the {key:?} answer cannot be true and was refused before decoding: {why} \
                     (is this a Kafka broker?)"
                ),
            )
            .with_broker(self.addr.clone())
        })
    }

    /// Reads one frame, checks its correlation id, skips the response header.
    fn read_frame(
        &mut self,
        id: i32,
        header_version: i16,
        api: &str,
        deadline: Instant,
    ) -> Result<Bytes> {
        if self.broken {
            return Err(self.broken_error());
        }
        let mut size = [0u8; 4];
        self.read_by(&mut size, deadline)
            .map_err(|e| self.fail(e, api, "waiting for the answer to"))?;
        let size = i32::from_be_bytes(size);
        if size < 4 {
            self.broken = true;
            return Err(Error::new(
                ErrorKind::Broker,
                format!("the {api} answer announces {size} bytes: is this a Kafka broker?"),
            )
            .with_broker(self.addr.clone()));
        }
        let head = size.to_be_bytes();
        if matches!(head, [0x15 | 0x16, 0x03, 0..=4, _]) {
            // A TLS record (alert or handshake), not a Kafka answer: the listener speaks TLS.
            self.broken = true;
            return Err(Error::new(
                ErrorKind::Connection,
                format!(
                    "the {api} answer is a TLS record: this listener expects TLS (SSL or SASL_SSL)"
                ),
            )
            .with_broker(self.addr.clone()));
        }
        if size as usize > self.max_frame {
            self.broken = true;
            let hint = if head.iter().all(|b| b.is_ascii_graphic()) {
                format!(
                    " (it begins with the text {:?}: is this a Kafka broker?)",
                    String::from_utf8_lossy(&head)
                )
            } else {
                String::new()
            };
            return Err(Error::new(
                ErrorKind::Broker,
                format!(
                    "the {api} answer announces {size} bytes, more than max_response_bytes \
                     ({}); nothing was allocated and the connection is closed{hint}",
                    self.max_frame
                ),
            )
            .with_broker(self.addr.clone()));
        }
        // Into the memory of the answers before (reclaimed once nothing decoded from them is
        // alive), so a megabyte fetch answer costs no fresh allocation and page faults.
        let mut buf = std::mem::take(&mut self.answer);
        buf.clear();
        buf.resize(size as usize, 0);
        let read = self.read_by(&mut buf, deadline);
        let mut frame = buf.split().freeze();
        // Keeping a view keeps the memory: only answers of common sizes are worth it.
        if (size as usize) <= ANSWER_REUSE_MAX {
            self.answer = buf;
        }
        read.map_err(|e| self.fail(e, api, "reading the answer to"))?;
        let header_shape = &shapes::groups::RESPONSE_HEADER_MESSAGE;
        if let Err(why) = shapes::check(header_shape, header_version, &frame) {
            self.broken = true;
            return Err(Error::new(ErrorKind::Broker, why).with_broker(self.addr.clone()));
        }
        let header = ResponseHeader::decode(&mut frame, header_version).map_err(|e| {
            self.broken = true;
            codec_error(e, &format!("decoding the {api} answer header"), &self.addr)
        })?;
        if header.correlation_id != id {
            self.broken = true;
            return Err(Error::new(
                ErrorKind::Broker,
                format!(
                    "the {api} answer has correlation id {}, expected {id}",
                    header.correlation_id
                ),
            )
            .with_broker(self.addr.clone()));
        }
        Ok(frame)
    }

    fn fail(&mut self, e: io::Error, api: &str, doing: &str) -> Error {
        self.broken = true;
        io_error(e, &format!("{doing} {api}"), &self.addr, self.bound)
    }

    fn broken_error(&self) -> Error {
        Error::new(
            ErrorKind::Connection,
            "the connection failed earlier and was not reopened",
        )
        .with_broker(self.addr.clone())
    }

    /// Writes all of `buf` by `deadline` (each write bounded by what is left).
    fn write_by(&mut self, mut buf: &[u8], deadline: Instant) -> io::Result<()> {
        while !buf.is_empty() {
            let left = remaining(deadline)?;
            self.stream.set_write_timeout(Some(left))?;
            match self.stream.write(buf) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => buf = &buf[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // TLS may still hold encrypted bytes; plain TCP has nothing to flush.
        if self.stream.buffers_writes() {
            self.stream.set_write_timeout(Some(remaining(deadline)?))?;
            self.stream.flush()?;
        }
        Ok(())
    }

    /// Fills `buf` by `deadline` (each read bounded by what is left).
    fn read_by(&mut self, mut buf: &mut [u8], deadline: Instant) -> io::Result<()> {
        while !buf.is_empty() {
            let left = remaining(deadline)?;
            self.stream.set_read_timeout(Some(left))?;
            match self.stream.read(buf) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => buf = &mut buf[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Largest answer whose memory a connection keeps for the next one (a fetch of a few
/// partitions' worth of 1 MB batches); a larger one is freed once decoded.
const ANSWER_REUSE_MAX: usize = 8 << 20;

/// Time left before `deadline`, or a `TimedOut` error when none is (a zero socket timeout
/// would mean "no timeout").
fn remaining(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left < Duration::from_micros(100) {
        return Err(io::ErrorKind::TimedOut.into());
    }
    Ok(left)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{MetadataRequest, ProduceRequest};
    use std::net::TcpListener;
    use std::thread;

    /// A fake broker for one connection: reads one request, then answers with `answer`
    /// (given the request's correlation id) or, with `None`, stays silent until the client
    /// hangs up.
    fn fake_broker(answer: Option<fn(i32) -> Vec<u8>>) -> (String, thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let handle = thread::Builder::new()
            .name("fake-broker".into())
            .spawn(move || {
                let (mut s, _) = listener.accept().unwrap();
                let mut size = [0u8; 4];
                s.read_exact(&mut size).unwrap();
                let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
                s.read_exact(&mut body).unwrap();
                let id = i32::from_be_bytes(body[4..8].try_into().unwrap());
                if let Some(answer) = answer {
                    let frame = answer(id);
                    s.write_all(&(frame.len() as i32).to_be_bytes()).unwrap();
                    s.write_all(&frame).unwrap();
                }
                // Wait for the client to hang up.
                let _ = s.read(&mut [0u8; 1]);
            })
            .unwrap();
        (addr, handle)
    }

    /// An ApiVersions v0 answer refusing v3, as a Kafka 0.10–2.3 broker sends it: Produce
    /// v0–v2 and Metadata v0–v5 only.
    fn too_old(id: i32) -> Vec<u8> {
        let mut f = id.to_be_bytes().to_vec();
        f.extend_from_slice(&code::UNSUPPORTED_VERSION.to_be_bytes());
        let ranges: [(i16, i16, i16); 3] = [(0, 0, 2), (3, 0, 5), (18, 0, 2)];
        f.extend_from_slice(&(ranges.len() as i32).to_be_bytes());
        for (k, min, max) in ranges {
            for v in [k, min, max] {
                f.extend_from_slice(&v.to_be_bytes());
            }
        }
        f
    }

    #[test]
    fn a_broker_too_old_is_reported_naming_the_api_and_the_versions() {
        let (addr, broker) = fake_broker(Some(too_old));
        let conn = Connection::open(
            &addr,
            "t",
            &Security::default(),
            Duration::from_secs(1),
            Duration::from_secs(2),
        )
        .unwrap();
        assert_eq!(conn.version::<MetadataRequest>().unwrap(), 5);
        let e = conn.version::<ProduceRequest>().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnsupportedBroker);
        assert!(e.message().contains("too old"), "{e}");
        assert!(e.message().contains("Produce v0–v2"), "{e}");
        assert_eq!(e.context().broker.as_deref(), Some(addr.as_str()));
        drop(conn);
        broker.join().unwrap();
    }

    #[test]
    fn an_answer_over_the_limit_is_refused_before_it_is_read() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let broker = thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut size = [0u8; 4];
            s.read_exact(&mut size).unwrap();
            let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
            s.read_exact(&mut body).unwrap();
            // An answer announcing 2 GB minus one, and nothing after it.
            s.write_all(&i32::MAX.to_be_bytes()).unwrap();
            let _ = s.read(&mut [0u8; 1]);
        });
        let e = Connection::open(
            &addr,
            "t",
            &Security::default(),
            Duration::from_secs(1),
            Duration::from_secs(2),
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Broker, "{e}");
        assert!(e.message().contains("max_response_bytes"), "{e}");
        assert!(e.message().contains("2147483647"), "{e}");
        broker.join().unwrap();
    }

    #[test]
    fn a_silent_broker_times_out_within_the_request_timeout() {
        let (addr, broker) = fake_broker(None);
        let started = Instant::now();
        let e = Connection::open(
            &addr,
            "t",
            &Security::default(),
            Duration::from_secs(1),
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert!(e.message().contains("ApiVersions"), "{e}");
        assert_eq!(e.context().broker.as_deref(), Some(addr.as_str()));
        broker.join().unwrap();
    }

    #[test]
    fn a_closed_port_or_unknown_host_is_a_connection_error() {
        let started = Instant::now();
        let e = Connection::open(
            "127.0.0.1:1",
            "t",
            &Security::default(),
            Duration::from_secs(2),
            Duration::from_secs(2),
        )
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(e.kind(), ErrorKind::Connection);
        let e = crate::transport::net::connect_within(
            "no-such-host.invalid:9092",
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Connection);
        assert!(e.message().contains("resolve"), "{e}");
    }
}
