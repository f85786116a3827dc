//! Realtime: PocketBase's subscription protocol over Server-Sent Events
//! (and a WebSocket transport of keepd's).
//!
//! - `topic` — parsing `COLLECTION/*`, `COLLECTION/ID` and their `?options=`.
//! - `broker` — the registry of clients (limits, subscriptions, auth,
//!   bounded queues).
//! - `fanout` — committed changes → rule-checked, rendered messages, grouped
//!   so that subscribers sharing a rule and auth shape share one evaluation.
//! - `sse` — a client's queue as an SSE stream (PB_CONNECT, keep-alive,
//!   idle and lifetime limits).
//! - `ws` — the same client over a WebSocket (subscriptions in-band too).
//!
//! Data flows one way: the store hands committed changes to the
//! [`fanout::Publisher`]; the broker never reads a request (the API layer,
//! `api::realtime`, passes it what it needs). Nothing here knows hyper.

pub mod broker;
pub mod fanout;
pub mod sse;
pub mod topic;
pub mod ws;

pub use broker::{
    Broker, Closer, Limits, RegisterError, Registration, SubscribeError, MAX_SUBSCRIPTIONS,
};
pub use fanout::{Publisher, Renderer};
pub use topic::Topic;
