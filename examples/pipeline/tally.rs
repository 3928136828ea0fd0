//! The run's own accounting (what each service did for this run's URLs), the live progress
//! line and the summary table.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Counts of this run, written by the services.
#[derive(Debug, Default)]
pub struct Tally {
    pub scheduled: AtomicU64,
    pub scraped: AtomicU64,
    pub parsed: AtomicU64,
    pub stored: AtomicU64,
    pub retried: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub duplicates: AtomicU64,
    pub dead_by_kind: Mutex<BTreeMap<String, u64>>,
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

impl Tally {
    pub fn add(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dead_letter(&self, kind: &str) {
        self.add(&self.dead_lettered);
        *self
            .dead_by_kind
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(kind.to_string())
            .or_insert(0) += 1;
    }

    /// Every scheduled URL ended: stored or dead-lettered.
    pub fn drained(&self) -> bool {
        let scheduled = get(&self.scheduled);
        scheduled > 0 && get(&self.stored) + get(&self.dead_lettered) >= scheduled
    }

    pub fn counts(&self) -> [(&'static str, u64); 7] {
        [
            ("scheduled", get(&self.scheduled)),
            ("scraped", get(&self.scraped)),
            ("parsed", get(&self.parsed)),
            ("stored", get(&self.stored)),
            ("retried", get(&self.retried)),
            ("dead-lettered", get(&self.dead_lettered)),
            ("duplicates", get(&self.duplicates)),
        ]
    }

    /// URLs neither stored nor dead-lettered (negative: ended twice).
    pub fn unaccounted(&self) -> i64 {
        get(&self.scheduled) as i64 - get(&self.stored) as i64 - get(&self.dead_lettered) as i64
    }

    /// The summary as JSON (for `--summary-json` and tests).
    pub fn to_json(&self, elapsed: Duration) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for (name, n) in self.counts() {
            map.insert(name.replace('-', "_"), n.into());
        }
        map.insert(
            "dead_by_kind".into(),
            serde_json::to_value(&*self.dead_by_kind.lock().unwrap_or_else(|e| e.into_inner()))
                .unwrap_or_default(),
        );
        map.insert("elapsed_secs".into(), elapsed.as_secs_f64().into());
        map.insert("unaccounted".into(), self.unaccounted().into());
        map.insert(
            "msgs_per_sec".into(),
            (get(&self.stored) as f64 / elapsed.as_secs_f64().max(1e-9)).into(),
        );
        serde_json::Value::Object(map)
    }

    /// The summary table.
    pub fn table(&self, elapsed: Duration) -> String {
        let mut rows: Vec<(String, String)> = self
            .counts()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (kind, n) in self
            .dead_by_kind
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            rows.push((format!("  dead-lettered: {kind}"), n.to_string()));
        }
        rows.push(("elapsed".into(), format!("{:.2} s", elapsed.as_secs_f64())));
        rows.push((
            "msgs/s (stored)".into(),
            format!(
                "{:.0}",
                get(&self.stored) as f64 / elapsed.as_secs_f64().max(1e-9)
            ),
        ));
        rows.push(("unaccounted".into(), self.unaccounted().to_string()));
        let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let v = rows.iter().map(|(_, x)| x.len()).max().unwrap_or(0);
        let mut out = String::new();
        out.push_str(&format!("+-{}-+-{}-+\n", "-".repeat(w), "-".repeat(v)));
        for (k, x) in rows {
            out.push_str(&format!("| {k:<w$} | {x:>v$} |\n"));
        }
        out.push_str(&format!("+-{}-+-{}-+\n", "-".repeat(w), "-".repeat(v)));
        out
    }
}

/// Prints progress once a second (one refreshing line on a terminal) until stopped.
pub struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    pub fn start(tally: Arc<Tally>, started: Instant) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("pipeline-progress".into())
            .spawn(move || {
                let terminal = std::io::stdout().is_terminal();
                let mut last = tally.counts();
                let mut last_at = Instant::now();
                while !stopping.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    if last_at.elapsed() < Duration::from_secs(1)
                        && !stopping.load(Ordering::Relaxed)
                    {
                        continue;
                    }
                    let now = tally.counts();
                    let secs = last_at.elapsed().as_secs_f64();
                    let parts: Vec<String> = now
                        .iter()
                        .zip(last.iter())
                        .map(|((name, n), (_, before))| {
                            format!("{name} {n} ({:.0}/s)", (n - before) as f64 / secs)
                        })
                        .collect();
                    let line = format!(
                        "[{:>6.1}s] {}",
                        started.elapsed().as_secs_f64(),
                        parts.join(" | ")
                    );
                    let mut out = std::io::stdout().lock();
                    if terminal {
                        let _ = write!(out, "\r\x1b[2K{line}");
                    } else {
                        let _ = writeln!(out, "{line}");
                    }
                    let _ = out.flush();
                    last = now;
                    last_at = Instant::now();
                }
                if terminal {
                    println!();
                }
            })
            .expect("starting the progress thread");
        Progress {
            stop,
            thread: Some(thread),
        }
    }

    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
