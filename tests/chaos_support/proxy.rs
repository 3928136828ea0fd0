//! [`StallProxy`]: a loopback TCP proxy (std only) that forwards bytes both ways until told
//! to stall, then holds every byte (no reads, so the kernel buffers fill and the peers see a
//! silent network) and accepts new connections without forwarding anything, until told to
//! resume. What a network partition or a stuck switch looks like to a client.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often a pump thread looks at the stall and stop flags.
const TICK: Duration = Duration::from_millis(20);

/// A running proxy from `127.0.0.1:<port>` to one target address.
pub struct StallProxy {
    stalled: Arc<AtomicBool>,
    stopped: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
    port: u16,
}

impl StallProxy {
    /// Listens on `127.0.0.1:port` and forwards each connection to `target`.
    pub fn start(port: u16, target: &str) -> StallProxy {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("proxy port is free");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let stalled = Arc::new(AtomicBool::new(false));
        let stopped = Arc::new(AtomicBool::new(false));
        let (s, t, target) = (stalled.clone(), stopped.clone(), target.to_string());
        let acceptor = std::thread::Builder::new()
            .name("stall-proxy".into())
            .spawn(move || accept_loop(listener, &target, s, t))
            .expect("proxy thread");
        StallProxy {
            stalled,
            stopped,
            acceptor: Some(acceptor),
            port,
        }
    }

    /// The address clients dial.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops (`true`) or resumes (`false`) all traffic.
    pub fn stall(&self, on: bool) {
        self.stalled.store(on, Ordering::SeqCst);
    }
}

impl Drop for StallProxy {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    target: &str,
    stalled: Arc<AtomicBool>,
    stopped: Arc<AtomicBool>,
) {
    let mut pumps = Vec::new();
    while !stopped.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                let _ = client.set_nonblocking(false);
                let (stalled, stopped, target) =
                    (stalled.clone(), stopped.clone(), target.to_string());
                pumps.push(std::thread::spawn(move || {
                    // A stalled network: the connection is accepted, nothing goes through.
                    while stalled.load(Ordering::SeqCst) && !stopped.load(Ordering::SeqCst) {
                        std::thread::sleep(TICK);
                    }
                    let Ok(server) = TcpStream::connect(&target) else {
                        return;
                    };
                    pump_both(client, server, &stalled, &stopped);
                }));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(TICK),
            Err(_) => std::thread::sleep(TICK),
        }
        pumps.retain(|p: &JoinHandle<()>| !p.is_finished());
    }
    for p in pumps {
        let _ = p.join();
    }
}

fn pump_both(
    client: TcpStream,
    server: TcpStream,
    stalled: &Arc<AtomicBool>,
    stopped: &Arc<AtomicBool>,
) {
    let (c2, s2) = match (client.try_clone(), server.try_clone()) {
        (Ok(c), Ok(s)) => (c, s),
        _ => return,
    };
    let (st, sp) = (stalled.clone(), stopped.clone());
    let back = std::thread::spawn(move || pump(s2, c2, &st, &sp));
    pump(client, server, stalled, stopped);
    let _ = back.join();
}

/// Copies `from` → `to` while not stalled, until either side closes or the proxy stops.
fn pump(mut from: TcpStream, mut to: TcpStream, stalled: &AtomicBool, stopped: &AtomicBool) {
    let _ = from.set_read_timeout(Some(TICK));
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if stopped.load(Ordering::SeqCst) {
            break;
        }
        if stalled.load(Ordering::SeqCst) {
            std::thread::sleep(TICK);
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
