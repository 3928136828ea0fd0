//! [`Shared`]: what a consumer's threads share (config, transport, handlers, idempotency
//! store, the stop signal) and the lifecycle of
//! its topic threads: start, stop within a bound, wait, report.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use super::dedupe::IdempotencyStore;
use super::health::{ConsumerHealth, ThreadHealth};
use super::metrics::ConsumerTopicMetrics;
use super::registry::Registry;
use super::routing::RetryRoute;
use super::runner::{self, TopicThread};
use super::stop::StopSignal;
use crate::config::{validate_topic_name, Config};
use crate::error::{Error, ErrorKind, Result};
use crate::transport::{Subscription, Transport};

/// The handler of the dead-letter topic's records.
pub(crate) type DeadLetterHandler =
    Arc<dyn Fn(&super::records::DeadLetterRecord) -> crate::domain::HandlerResult + Send + Sync>;

pub(crate) struct Shared {
    /// Set by `register_dead_letter_handler`: the only way to consume the dead-letter topic.
    pub(crate) dead_letter_handler: RwLock<Option<DeadLetterHandler>>,
    pub(crate) config: Config,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) registry: RwLock<Registry>,
    pub(crate) store: RwLock<Arc<dyn IdempotencyStore>>,
    pub(crate) stop: StopSignal,
    /// How this consumer reads the retry topic: set when its reader starts (see
    /// `routing.rs`), never changed afterwards.
    retry_route: OnceLock<RetryRoute>,
    /// Set by `shutdown`: when threads must be done.
    deadline: Mutex<Option<Instant>>,
    threads: Mutex<Vec<TopicThread>>,
    watchdog: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Shared {
    pub(crate) fn new(
        config: Config,
        transport: Arc<dyn Transport>,
        store: Arc<dyn IdempotencyStore>,
    ) -> Result<Self> {
        Ok(Shared {
            dead_letter_handler: RwLock::new(None),
            config,
            transport,
            registry: RwLock::new(Registry::default()),
            store: RwLock::new(store),
            stop: StopSignal::new(),
            retry_route: OnceLock::new(),
            deadline: Mutex::new(None),
            threads: Mutex::new(Vec::new()),
            watchdog: Mutex::new(None),
        })
    }

    pub(crate) fn registry(&self) -> RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn dead_letter_handler(&self) -> Option<DeadLetterHandler> {
        self.dead_letter_handler
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn store(&self) -> Arc<dyn IdempotencyStore> {
        self.store.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// When a stopping thread must be done (a running shutdown's deadline, else
    /// `shutdown_timeout` from now).
    pub(crate) fn stop_deadline(&self) -> Instant {
        let deadline = *self.deadline.lock().unwrap_or_else(|e| e.into_inner());
        deadline.unwrap_or_else(|| Instant::now() + self.config.consumer.shutdown_timeout)
    }

    /// The consumer group `topic` is read under: the retry topic under this consumer's
    /// retry group, any other topic under `group_id`.
    pub(crate) fn group_reading(&self, topic: &str) -> String {
        match self.retry_route.get() {
            Some(route) if route.topic == topic => route.group.clone(),
            _ => self.config.group_id.clone(),
        }
    }

    /// Whether a retry entry read from `topic`, parked from the topic `origin`, is this
    /// consumer's to take back (see `routing.rs`).
    pub(crate) fn takes_retry(&self, topic: &str, origin: &[u8]) -> bool {
        self.retry_route
            .get()
            .is_none_or(|route| route.takes(topic, origin))
    }

    /// Whether retry entries read from `topic` are taken by their origin topic.
    pub(crate) fn routes_retry(&self, topic: &str) -> bool {
        self.retry_route
            .get()
            .is_some_and(|route| route.filters(topic))
    }

    fn threads(&self) -> MutexGuard<'_, Vec<TopicThread>> {
        self.threads.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribes to every topic, then starts a thread per topic.
    pub(crate) fn start(self: &Arc<Self>, topics: &[String]) -> Result<()> {
        if self.stop.is_stopped() {
            return Err(Error::new(ErrorKind::Closed, "the consumer was shut down"));
        }
        if topics.is_empty() {
            return Err(Error::config(
                "topics",
                "[]",
                "give at least one topic to consume",
            ));
        }
        let running: Vec<String> = self
            .threads()
            .iter()
            .map(|t| t.stats.topic.clone())
            .collect();
        for (i, topic) in topics.iter().enumerate() {
            validate_topic_name(topic)?;
            if running.contains(topic) || topics[..i].contains(topic) {
                return Err(Error::config(
                    "topics",
                    topic,
                    "this topic is consumed already",
                ));
            }
        }
        let c = &self.config.consumer;
        let dead_letter = topics.iter().find(|t| c.is_dead_letter_topic(t));
        if let (Some(topic), None) = (dead_letter, self.dead_letter_handler()) {
            return Err(Error::config(
                "topics",
                topic,
                "consuming the dead-letter topic needs a dead-letter handler \
                 (Consumer::register_dead_letter_handler): without one, its records would be \
                 dead-lettered into the same topic",
            ));
        }
        let mut topics = topics.to_vec();
        let retry_topic = c.retry_topic_of(&self.config.group_id);
        // Only a consumer of topics whose messages can be parked reads the retry topic (a
        // consumer of the dead-letter topic alone parks nothing: it would take every entry
        // of its group, see routing.rs).
        let parks = !c
            .retry_origins(&self.config.group_id, &[&running[..], &topics[..]].concat())
            .is_empty();
        if c.retry_topic_enabled
            && parks
            && !running.contains(&retry_topic)
            && !topics.contains(&retry_topic)
        {
            log::info!(
                "consuming the retry topic `{retry_topic}` too (consumer.retry_topic_enabled): \
                 messages whose in-place retries ran out come back from it"
            );
            // Where the broker allows it, the retry topic is created if missing (CreateTopics);
            // elsewhere its subscription below says why it cannot be read.
            if let Err(e) = self.transport.ensure_topic(&retry_topic, -1, -1) {
                log::debug!("ensuring the retry topic {retry_topic}: {e}");
            }
            topics.push(retry_topic);
        }
        let route = self.route_for(&running, &topics)?;
        if let Some(route) = &route {
            self.seed_retry_group(route);
        }
        let mut subs: Vec<(String, Box<dyn Subscription>)> = Vec::new();
        for topic in &topics {
            let mut options = runner::subscribe_options(self, topic);
            if let Some(route) = route.as_ref().filter(|r| r.topic == *topic) {
                options.group = route.group.clone();
            }
            match self.transport.subscribe(options) {
                Ok(sub) => subs.push((topic.clone(), sub)),
                Err(e) => {
                    for (_, mut sub) in subs {
                        let _ = sub.close();
                    }
                    return Err(e);
                }
            }
        }
        if let Some(route) = route {
            log::info!(
                "reading the retry topic `{}` as group `{}`: taking back the entries parked \
                 from {:?}",
                route.topic,
                route.group,
                route.origins()
            );
            let _ = self.retry_route.set(route);
        }
        {
            let mut watchdog = self.watchdog.lock().unwrap_or_else(|e| e.into_inner());
            if watchdog.is_none() {
                *watchdog = Some(super::watchdog::start(self)?);
            }
        }
        for (topic, sub) in subs {
            let thread = runner::spawn(self.clone(), &topic, sub)?;
            self.threads().push(thread);
        }
        Ok(())
    }

    /// The retry route to set if this `consume` call (of `topics`, beside the `running`
    /// ones) starts the retry topic's reader. A call that adds topics once the reader runs
    /// is refused: the reader's group is derived from the topics it takes entries of.
    fn route_for(&self, running: &[String], topics: &[String]) -> Result<Option<RetryRoute>> {
        let c = &self.config.consumer;
        let group = &self.config.group_id;
        if let Some(route) = self.retry_route.get() {
            let added = c.retry_origins(group, topics);
            if !added.is_empty() {
                return Err(Error::config(
                    "topics",
                    added.join(","),
                    format!(
                        "this consumer reads the retry topic already, as group `{}` for the \
                         topics {:?}: consume every topic of a consumer in one `consume` \
                         call (or use another consumer), so that the retry entries of each \
                         come back to it",
                        route.group,
                        route.origins()
                    ),
                ));
            }
            return Ok(None);
        }
        if !topics.contains(&c.retry_topic_of(group)) {
            return Ok(None);
        }
        let all: Vec<String> = running.iter().chain(topics).cloned().collect();
        Ok(Some(RetryRoute::new(&self.config, &all)))
    }

    /// Where the retry group has no commits on the retry topic and `group_id` has (an
    /// earlier version read the retry topic as the group itself), the retry group starts
    /// where that one stopped, not at `start_offset` (see the README's "Upgrading").
    fn seed_retry_group(&self, route: &RetryRoute) {
        let group = &self.config.group_id;
        match self
            .transport
            .copy_group_offsets(group, &route.group, &route.topic)
        {
            Ok(0) => {}
            Ok(n) => log::info!(
                "retry group `{}` starts where group `{group}` stopped on `{}` ({n} \
                 partition(s) copied)",
                route.group,
                route.topic
            ),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::UnsupportedBroker | ErrorKind::UnknownTopic
                ) =>
            {
                log::debug!("not copying {group}'s offsets on {}: {e}", route.topic)
            }
            Err(e) => log::warn!(
                "copying group `{group}`'s committed offsets on `{}` to `{}`: {e}; it starts \
                 at consumer.start_offset",
                route.topic,
                route.group
            ),
        }
    }

    /// The counters of every thread started.
    pub(crate) fn all_stats(&self) -> Vec<Arc<super::metrics::TopicStats>> {
        self.threads().iter().map(|t| t.stats.clone()).collect()
    }

    /// Stops every thread and waits for them until `timeout`. Threads still running then are reported (and joined by a later `wait`).
    pub(crate) fn shutdown(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        *self.deadline.lock().unwrap_or_else(|e| e.into_inner()) = Some(deadline);
        self.stop.stop();
        let waits: Vec<_> = self.threads().iter().map(|t| t.finished.clone()).collect();
        for finished in waits {
            let left = deadline.saturating_duration_since(Instant::now());
            // Nothing is ever sent: the channel disconnects when the thread ends.
            let _ = finished.recv_timeout(left);
        }
        let still_running = self.reap();
        let watchdog = self
            .watchdog
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(w) = watchdog {
            // It sleeps on the stop signal: it ends at once.
            let _ = w.join();
        }
        if !still_running.is_empty() {
            log::error!("consumer threads for {still_running:?} did not stop within {timeout:?}");
            return Err(Error::timeout(
                format!("stopping the consumer threads for {still_running:?}"),
                timeout,
            ));
        }
        Ok(())
    }

    /// Blocks until every thread ended, or `timeout` passed (`None`: no bound). Returns
    /// whether all ended.
    pub(crate) fn wait(&self, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| Instant::now() + t);
        let waits: Vec<_> = self.threads().iter().map(|t| t.finished.clone()).collect();
        for finished in waits {
            let _ = match deadline {
                Some(d) => finished
                    .recv_timeout(d.saturating_duration_since(Instant::now()))
                    .map_err(|_| ()),
                None => finished.recv().map_err(|_| ()),
            };
        }
        self.reap().is_empty()
    }

    /// Joins ended threads; returns the topics of those still running.
    fn reap(&self) -> Vec<String> {
        let mut running = Vec::new();
        for t in self.threads().iter_mut() {
            if t.thread.is_none() {
                continue;
            }
            if !t.has_ended() {
                running.push(t.stats.topic.clone());
            } else if let Some(handle) = t.thread.take() {
                // Its last act was to disconnect `finished`: the join returns at once.
                if handle.join().is_err() {
                    log::error!("consumer thread for {} ended in a panic", t.stats.topic);
                }
            }
        }
        running
    }

    /// Whether any thread is running.
    pub(crate) fn is_running(&self) -> bool {
        self.threads()
            .iter()
            .any(|t| t.thread.as_ref().is_some_and(|h| !h.is_finished()))
    }

    pub(crate) fn metrics(&self) -> Vec<ConsumerTopicMetrics> {
        let mut all: Vec<_> = self.threads().iter().map(|t| t.stats.snapshot()).collect();
        all.sort_by(|a, b| a.topic.cmp(&b.topic));
        all
    }

    pub(crate) fn health(&self) -> ConsumerHealth {
        let check = self.transport.health_check(self.config.connect_timeout);
        let mut threads: Vec<_> = self
            .threads()
            .iter()
            .map(|t| ThreadHealth::from_stats(&t.stats))
            .collect();
        threads.sort_by(|a, b| a.topic.cmp(&b.topic));
        ConsumerHealth {
            broker_reachable: check.is_ok(),
            broker_error: check.err().map(|e| e.to_string()),
            threads,
        }
    }
}
