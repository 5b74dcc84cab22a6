//! io_uring for the shards: provided-buffer rings, the typed op table, and
//! the engine that ties them to one ring. All io_uring `unsafe` is here.

mod buffers;
mod engine;
mod ops;

pub(super) use engine::Engine;
