//! PostgreSQL decides reservations in batches, as SQLite's writer does: the reservations that queue in this
//! sidecar while one transaction is in flight go into the next one, which locks every size they ask for in one
//! statement, plans them in arrival order against what it read, writes them all in one statement and commits
//! once; each caller is answered after that commit. On a hot size this turns one transaction per reservation,
//! each holding the size's row lock across its round trips, into one per batch. A batch that fails (another
//! sidecar took one of its references, a deadlock, anything) is rolled back whole and its reservations run again
//! one transaction each, in the same order, so a failure stays its own request's.

use tokio::sync::{mpsc, oneshot};

use super::PostgresStore;
use super::decisions::{self, Outbox, ReserveRequest};
use crate::store::{ReserveOutcome, StoreError};

/// At most this many reservations share one transaction: bounds how long the first waits for the last.
const MAX_BATCH: usize = 128;
/// Reservations waiting for the next batch; the HTTP layer's concurrency limit keeps the queue well below this.
const QUEUE: usize = 4096;

/// A reservation waiting for its batch, and where its answer goes.
#[derive(Debug)]
pub(super) struct QueuedReservation {
    request: ReserveRequest,
    outbox: Outbox,
    answer: oneshot::Sender<Result<ReserveOutcome, StoreError>>,
}

fn batching_stopped() -> StoreError {
    StoreError::Inconsistent("the ledger's reservation batching has stopped (the store was closed)".to_owned())
}

/// Starts the task that decides reservations in batches with `store` (a store without a queue of its own); it
/// stops once every sender of the returned queue is dropped.
pub(super) fn start(store: PostgresStore) -> mpsc::Sender<QueuedReservation> {
    let (queue, mut queued) = mpsc::channel::<QueuedReservation>(QUEUE);
    tokio::spawn(async move {
        while let Some(first) = queued.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match queued.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            // A caller that stopped waiting (its request timed out and was answered 408) is not decided: nobody
            // would know of the units it held.
            batch.retain(|queued| !queued.answer.is_closed());
            if !batch.is_empty() {
                decide_batch(&store, batch).await;
            }
        }
    });
    queue
}

/// Queues a reservation for the next batch and waits for its answer.
pub(super) async fn reserve_in_next_batch(
    queue: &mpsc::Sender<QueuedReservation>,
    request: ReserveRequest,
    outbox: Outbox,
) -> Result<ReserveOutcome, StoreError> {
    let (answer, answered) = oneshot::channel();
    queue.send(QueuedReservation { request, outbox, answer }).await.map_err(|_| batching_stopped())?;
    answered.await.map_err(|_| batching_stopped())?
}

/// Decides a batch in one transaction, or, if that fails, each of its reservations alone.
async fn decide_batch(store: &PostgresStore, batch: Vec<QueuedReservation>) {
    if batch.len() > 1 {
        match reserve_together(store, &batch).await {
            Ok(outcomes) => {
                for (queued, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = queued.answer.send(Ok(outcome));
                }
                return;
            }
            Err(error) => {
                if let Some(cause) = unreachable_database(&error) {
                    // Nothing any one reservation did: running each again alone would wait as long again, each.
                    tracing::warn!(error = %error, reservations = batch.len(), "a reservation batch could not reach the database");
                    for queued in batch {
                        let _ = queued.answer.send(Err(StoreError::Busy(cause.clone())));
                    }
                    return;
                }
                tracing::debug!(error = %error, reservations = batch.len(),
                    "a reservation batch failed as a whole; its reservations run again one by one");
            }
        }
    }
    for queued in batch {
        if queued.answer.is_closed() {
            continue;
        }
        let outcome = store.reserve_alone(&queued.request, queued.outbox).await;
        let _ = queued.answer.send(outcome);
    }
}

/// The cause of a failure to reach the database at all (no connection free within the pool's timeout, the pool
/// closed, the connection lost): transient, and the same for every reservation of the batch.
fn unreachable_database(error: &StoreError) -> Option<std::sync::Arc<dyn std::error::Error + Send + Sync>> {
    let StoreError::Database(cause) = error else {
        return None;
    };
    let unreachable = matches!(
        cause.downcast_ref::<sqlx::Error>(),
        Some(sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_))
    );
    unreachable.then(|| cause.clone())
}

/// Every reservation of the batch in one transaction, committed; nothing if it fails.
async fn reserve_together(
    store: &PostgresStore,
    batch: &[QueuedReservation],
) -> Result<Vec<ReserveOutcome>, StoreError> {
    let requests: Vec<ReserveRequest> = batch.iter().map(|queued| queued.request.clone()).collect();
    let outbox = batch.first().map(|queued| queued.outbox.clone()).ok_or_else(batching_stopped)?;
    store.counters.writes.fetch_add(requests.len() as u64, std::sync::atomic::Ordering::Relaxed);
    let mut transaction = store.pool.begin().await?;
    let outcomes = decisions::reserve_all(&mut transaction, outbox, &requests).await?;
    transaction.commit().await?;
    store.counters.commits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(outcomes)
}
