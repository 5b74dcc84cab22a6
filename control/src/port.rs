//! The control core's seam to the data plane: queue a message to a shard,
//! take the shards' events.
//! [`dataplane::Dataplane`] is the real side; [`InMemoryDataplane`] stands in
//! for it where the core is tested without root, TUN or sockets.

use dataplane::{Dataplane, FromShard, ShardId, ToShard};
use std::collections::VecDeque;

/// What the control core needs of the data plane. Every call returns at
/// once: a full shard queue gives the message back.
pub trait DataplanePort {
    fn shard_count(&self) -> usize;
    /// Queues `msg` for `shard`; gives it back when the queue is full or the
    /// shard does not exist.
    fn send(&mut self, shard: ShardId, msg: ToShard) -> Result<(), ToShard>;
    /// Appends every event the shards queued to `out`.
    fn drain_events(&mut self, out: &mut Vec<FromShard>);
}

impl DataplanePort for Dataplane {
    fn shard_count(&self) -> usize {
        Dataplane::shard_count(self)
    }

    fn send(&mut self, shard: ShardId, msg: ToShard) -> Result<(), ToShard> {
        Dataplane::send(self, shard, msg)
    }

    fn drain_events(&mut self, out: &mut Vec<FromShard>) {
        self.ack_events();
        Dataplane::drain_events(self, out);
    }
}

/// The data plane as a test sees it: messages to shards are kept in order
/// for the test to carry out (with [`dataplane::handshake`] and
/// [`dataplane::fastpath`], the shards' own code), and shard events are
/// whatever the test queues with [`push_event`](Self::push_event).
#[derive(Debug)]
pub struct InMemoryDataplane {
    shards: usize,
    /// Messages each shard would have received, oldest first.
    pub to_shards: VecDeque<(ShardId, ToShard)>,
    events: VecDeque<FromShard>,
}

impl InMemoryDataplane {
    pub fn new(shards: usize) -> Self {
        Self { shards: shards.max(1), to_shards: VecDeque::new(), events: VecDeque::new() }
    }

    /// Queues an event as a shard would.
    pub fn push_event(&mut self, e: FromShard) {
        self.events.push_back(e);
    }
}

impl DataplanePort for InMemoryDataplane {
    fn shard_count(&self) -> usize {
        self.shards
    }

    fn send(&mut self, shard: ShardId, msg: ToShard) -> Result<(), ToShard> {
        if usize::from(shard.0) >= self.shards {
            return Err(msg);
        }
        self.to_shards.push_back((shard, msg));
        Ok(())
    }

    fn drain_events(&mut self, out: &mut Vec<FromShard>) {
        out.extend(self.events.drain(..));
    }
}
