//! The leader's STREAM events, relayed to the other nodes so that their subscribers get
//! them too. STREAM tables are not replicated through the log (their events live in memory
//! and expire): the relay is best effort, in order per node, and never holds up an insert.

use super::ClusterToken;
use super::network::{NODE_HEADER, TOKEN_HEADER};
use super::service::STREAM;
use crate::replication::StreamEvents;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Events waiting for one node; beyond this, new events for it are dropped (and logged).
const QUEUE: usize = 4096;
/// Relayed events sent in one request at most.
const BATCH: usize = 256;

/// A node: its id and cluster address.
type Peer = (u64, String);

/// One queue (and one sending task, so one order) per other node.
#[derive(Default)]
pub(super) struct StreamRelay {
    queues: Mutex<HashMap<Peer, mpsc::Sender<Arc<StreamEvents>>>>,
}

impl StreamRelay {
    /// Queues `events` for every node in `peers` (`(id, cluster address)`).
    pub(super) fn send(
        &self,
        peers: &[Peer],
        events: StreamEvents,
        client: &reqwest::Client,
        token: &ClusterToken,
        from: u64,
        scheme: &str,
    ) {
        let events = Arc::new(events);
        let mut queues = self.queues.lock();
        queues.retain(|peer, tx| !tx.is_closed() && peers.contains(peer));
        for peer in peers {
            let tx = queues
                .entry(peer.clone())
                .or_insert_with(|| spawn_sender(peer, client.clone(), token.clone(), from, scheme));
            if tx.try_send(events.clone()).is_err() {
                tracing::warn!(node = peer.0, "stream events dropped for a node that does not keep up");
            }
        }
    }
}

/// The task sending one node its queue, batch by batch; it ends when its queue is dropped.
fn spawn_sender(
    (node, address): &Peer,
    client: reqwest::Client,
    token: ClusterToken,
    from: u64,
    scheme: &str,
) -> mpsc::Sender<Arc<StreamEvents>> {
    let (tx, mut rx) = mpsc::channel::<Arc<StreamEvents>>(QUEUE);
    let (node, url) = (*node, format!("{scheme}://{address}{STREAM}"));
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(BATCH);
        while rx.recv_many(&mut batch, BATCH).await > 0 {
            let body: Vec<&StreamEvents> = batch.iter().map(|e| e.as_ref()).collect();
            let sent = client
                .post(&url)
                .header(TOKEN_HEADER, token.header())
                .header(NODE_HEADER, from)
                .timeout(Duration::from_secs(2))
                .json(&body)
                .send()
                .await;
            if let Err(e) = sent.and_then(|r| r.error_for_status()) {
                tracing::debug!(node, "stream events not delivered: {e}");
            }
            batch.clear();
        }
    });
    tx
}
