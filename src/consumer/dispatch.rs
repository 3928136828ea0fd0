//! Taking one poll's records to their ends, in order, batching where a handler asks.
//!
//! ```text
//!  records ─▶ prepare (decode, retry entry, dedupe, handler lookup)
//!               ├─ ended already ───────────────────────────▶ tracker.end
//!               ├─ ready, unbatched handler ─ attempts ─────▶ tracker.end
//!               └─ ready, batch handler: gather the next ready messages of the same type
//!                  (up to max_batch, distinct ids; records ending on the way end at once;
//!                  the first record that does not fit is prepared again later) ─▶ one batch
//!                  call for their first attempt ─▶ each one's own retries ─▶ tracker.end
//!  after each end: commit if commit_interval passed (or is zero)
//! ```

use std::time::Duration;

use super::process::{Ending, Prepared};
use super::runner::{commit_with, TopicLoop};
use crate::transport::ConsumedRecord;

impl TopicLoop {
    /// Handles `records` in order until all ended or the consumer stops.
    pub(super) fn dispatch(&mut self, records: &[ConsumedRecord]) {
        let mut i = 0;
        while i < records.len() && !self.shared.stop.is_stopped() {
            let ready = match self.prepare(&records[i]) {
                Prepared::Ready(ready) => ready,
                Prepared::Ended(Ending::NotEnded) => {
                    if !self.take_to_end(&records[i]) {
                        return;
                    }
                    i += 1;
                    continue;
                }
                Prepared::Ended(_) => {
                    self.end(&records[i]);
                    i += 1;
                    continue;
                }
            };
            let Some(max) = ready.batch_limit() else {
                let ending = self.flow.finish(ready, &records[i]);
                if !self.settle(&records[i], ending) {
                    return;
                }
                i += 1;
                continue;
            };
            let mut batch = vec![(ready, i)];
            let mut next = i + 1;
            while batch.len() < max && next < records.len() && !self.shared.stop.is_stopped() {
                match self.prepare(&records[next]) {
                    Prepared::Ready(r)
                        if batch[0].0.batches_with(&r)
                            && batch.iter().all(|(b, _)| !b.same_id(&r)) =>
                    {
                        batch.push((r, next));
                        next += 1;
                    }
                    // Another type, or a second copy of a message in the batch: prepared
                    // again (nothing was done for it yet) once the batch ended, so a copy
                    // is then seen as a duplicate.
                    Prepared::Ready(_) => break,
                    // Not ended (stopping): prepared again on the next round, if any.
                    Prepared::Ended(Ending::NotEnded) => break,
                    Prepared::Ended(_) => {
                        self.end(&records[next]);
                        next += 1;
                    }
                }
            }
            let indexes: Vec<usize> = batch.iter().map(|(_, idx)| *idx).collect();
            let endings = self.flow.process_batch(
                batch
                    .into_iter()
                    .map(|(r, idx)| (r, &records[idx]))
                    .collect(),
            );
            for (idx, ending) in indexes.into_iter().zip(endings) {
                if !self.settle(&records[idx], ending) {
                    return;
                }
            }
            i = next;
        }
    }

    /// Records how `record` ended; a record that did not end is retried on its own (or,
    /// when stopping, left). Returns `false` when stopping.
    fn settle(&mut self, record: &ConsumedRecord, ending: Ending) -> bool {
        match ending {
            Ending::NotEnded => self.take_to_end(record),
            _ => {
                self.end(record);
                true
            }
        }
    }

    fn end(&mut self, record: &ConsumedRecord) {
        self.tracker.end(record.partition, record.offset);
        self.commit_if_due();
    }

    fn commit_if_due(&mut self) {
        let interval = self.shared.config.consumer.commit_interval;
        if interval.is_zero() || self.last_commit.elapsed() >= interval {
            self.commit();
        }
    }

    /// Prepares `record`; a long wait first commits what ended.
    fn prepare(&mut self, record: &ConsumedRecord) -> Prepared {
        let TopicLoop {
            flow,
            sub,
            tracker,
            stats,
            last_commit,
            ..
        } = &mut *self;
        let mut commit_now = || {
            if let Some(sub) = sub.as_mut() {
                commit_with(sub.as_mut(), tracker, stats, last_commit);
            }
        };
        flow.prepare(record, &mut commit_now)
    }

    /// Processes one record from the start until it ends; `false` if the consumer stopped
    /// first (the record stays pending).
    fn take_to_end(&mut self, record: &ConsumedRecord) -> bool {
        loop {
            if self.shared.stop.is_stopped() {
                return false;
            }
            let ending = match self.prepare(record) {
                Prepared::Ended(ending) => ending,
                Prepared::Ready(ready) => self.flow.finish(ready, record),
            };
            match ending {
                Ending::NotEnded if self.shared.stop.is_stopped() => return false,
                // Only a record that cannot be encoded for the dead-letter topic gets here
                // (logged loudly): try again.
                Ending::NotEnded => {
                    if self.shared.stop.sleep(Duration::from_secs(1)) {
                        return false;
                    }
                }
                _ => {
                    self.end(record);
                    return true;
                }
            }
        }
    }
}
