//! [`AnswerProxy`]: a loopback TCP proxy (std only) that reads Kafka's frames both ways and
//! can hold the broker's answers to Produce (or Metadata) requests for a while after the
//! broker handled them: what a client sees when an answer is lost or late, so the outcome of
//! a produce is unknown. Requests pass at once, and the time each Produce request passed is
//! kept; answers keep their order on each connection (a held answer holds the answers behind
//! it, as TCP would).

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Kafka's API key of Produce.
const PRODUCE: i16 = 0;
/// Kafka's API key of Metadata.
const METADATA: i16 = 3;

/// What the pumps of every connection share.
#[derive(Default)]
struct Shared {
    /// Milliseconds a Produce answer is held (0: passed at once).
    hold_ms: AtomicU64,
    /// Milliseconds a Metadata answer is held (0: passed at once).
    hold_metadata_ms: AtomicU64,
    /// When each Produce request passed to the broker.
    produced_at: Mutex<Vec<Instant>>,
    stopped: AtomicBool,
    /// Produce answers held so far.
    held: AtomicU64,
}

/// A running proxy from `127.0.0.1:<port>` to one broker.
pub struct AnswerProxy {
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
    port: u16,
}

impl AnswerProxy {
    /// Listens on `127.0.0.1:port` and forwards each connection to `target`.
    pub fn start(port: u16, target: &str) -> AnswerProxy {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("proxy port is free");
        listener.set_nonblocking(true).expect("nonblocking");
        let shared = Arc::new(Shared::default());
        let (s, target) = (shared.clone(), target.to_string());
        let acceptor = std::thread::Builder::new()
            .name("answer-proxy".into())
            .spawn(move || accept_loop(listener, &target, s))
            .expect("proxy thread");
        AnswerProxy {
            shared,
            acceptor: Some(acceptor),
            port,
        }
    }

    /// The address clients dial.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Holds every Produce answer for `hold` from now on (`Duration::ZERO`: none).
    pub fn hold_produce_answers(&self, hold: Duration) {
        self.shared
            .hold_ms
            .store(hold.as_millis() as u64, Ordering::SeqCst);
    }

    /// Holds every Metadata answer for `hold` from now on (`Duration::ZERO`: none).
    pub fn hold_metadata_answers(&self, hold: Duration) {
        self.shared
            .hold_metadata_ms
            .store(hold.as_millis() as u64, Ordering::SeqCst);
    }

    /// When each Produce request passed to the broker, in order.
    pub fn produce_requests(&self) -> Vec<Instant> {
        self.shared.produced_at.lock().unwrap().clone()
    }

    /// How many Produce answers were held so far.
    pub fn held(&self) -> u64 {
        self.shared.held.load(Ordering::SeqCst)
    }
}

impl Drop for AnswerProxy {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

fn accept_loop(listener: TcpListener, target: &str, shared: Arc<Shared>) {
    while !shared.stopped.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                let _ = client.set_nonblocking(false);
                if let Ok(broker) = TcpStream::connect(target) {
                    connect_pumps(client, broker, shared.clone());
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Reads one frame (its 4-byte length prefix included); `None` at the end of the stream.
fn read_frame(from: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    from.read_exact(&mut len).ok()?;
    let n = i32::from_be_bytes(len);
    if !(0..=256 * 1024 * 1024).contains(&n) {
        return None;
    }
    let mut frame = vec![0u8; 4 + n as usize];
    frame[..4].copy_from_slice(&len);
    from.read_exact(&mut frame[4..]).ok()?;
    Some(frame)
}

/// Answers on their way to the client, each with the moment it may go.
type Outbox = Arc<(Mutex<VecDeque<Option<(Instant, Vec<u8>)>>>, Condvar)>;

fn connect_pumps(client: TcpStream, broker: TcpStream, shared: Arc<Shared>) {
    // Correlation id → API key of each request not answered yet.
    let asked: Arc<Mutex<HashMap<i32, i16>>> = Arc::default();
    let outbox: Outbox = Arc::default();
    let (mut c_in, mut b_out) = (client.try_clone().unwrap(), broker.try_clone().unwrap());
    let (a, up) = (asked.clone(), shared.clone());
    let _ = std::thread::Builder::new()
        .name("answer-proxy-up".into())
        .spawn(move || {
            while let Some(frame) = read_frame(&mut c_in) {
                if frame.len() >= 12 {
                    let key = i16::from_be_bytes([frame[4], frame[5]]);
                    let id = i32::from_be_bytes([frame[8], frame[9], frame[10], frame[11]]);
                    a.lock().unwrap().insert(id, key);
                    if key == PRODUCE {
                        up.produced_at.lock().unwrap().push(Instant::now());
                    }
                }
                if b_out.write_all(&frame).is_err() {
                    break;
                }
            }
            let _ = b_out.shutdown(Shutdown::Both);
            let _ = c_in.shutdown(Shutdown::Both);
        });
    let (mut b_in, o, s) = (broker, outbox.clone(), shared.clone());
    let _ = std::thread::Builder::new()
        .name("answer-proxy-down".into())
        .spawn(move || {
            while let Some(frame) = read_frame(&mut b_in) {
                let id = if frame.len() >= 8 {
                    i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]])
                } else {
                    -1
                };
                let key = asked.lock().unwrap().remove(&id);
                let hold = match key {
                    Some(PRODUCE) => s.hold_ms.load(Ordering::SeqCst),
                    Some(METADATA) => s.hold_metadata_ms.load(Ordering::SeqCst),
                    _ => 0,
                };
                let due = if hold > 0 {
                    if key == Some(PRODUCE) {
                        s.held.fetch_add(1, Ordering::SeqCst);
                    }
                    Instant::now() + Duration::from_millis(hold)
                } else {
                    Instant::now()
                };
                let (q, ready) = &*o;
                q.lock().unwrap().push_back(Some((due, frame)));
                ready.notify_one();
            }
            let (q, ready) = &*o;
            q.lock().unwrap().push_back(None);
            ready.notify_one();
        });
    let mut c_out = client;
    let _ = std::thread::Builder::new()
        .name("answer-proxy-out".into())
        .spawn(move || {
            let (q, ready) = &*outbox;
            loop {
                let next = {
                    let mut guard = q.lock().unwrap();
                    loop {
                        if let Some(item) = guard.pop_front() {
                            break item;
                        }
                        guard = ready.wait(guard).unwrap();
                    }
                };
                let Some((due, frame)) = next else { break };
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                if c_out.write_all(&frame).is_err() {
                    break;
                }
            }
            let _ = c_out.shutdown(Shutdown::Both);
        });
}
