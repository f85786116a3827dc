//! The registry of realtime clients: who is connected, from where, as whom,
//! subscribed to what, and each client's bounded event queue.
//!
//! Limits (all from the config): clients in total and per IP address,
//! subscriptions per client (a fixed-capacity `heapless::Vec`), events
//! and bytes queued per client — a client whose queue is full is
//! disconnected, never buffered further — and bytes queued across all
//! clients (over it, the client furthest behind is disconnected). A queued
//! message is charged until it is written or dropped with its client's
//! queue, so the bytes are given back when a client leaves.

use super::topic::Topic;
use crate::auth::Identity;
use crate::schema::Collection;
use crate::util::{random_string, ALPHANUM};
use bytes::Bytes;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{mpsc, watch};

/// The most subscriptions a client can hold (the capacity of its set; the
/// configured limit may be lower).
pub const MAX_SUBSCRIPTIONS: usize = 64;

/// A client's subscriptions: fixed capacity, no reallocation.
pub type Subscriptions = heapless::Vec<Subscribed, MAX_SUBSCRIPTIONS>;

/// One topic a client subscribes to, and when: the broker's subscription
/// sequence at the request that added it (kept while later requests keep
/// the topic). An event goes only to topics subscribed before its write was
/// committed (`Broker::subscribed`), as in PocketBase, where a write's
/// events go out before it is answered: the fan-out runs after the answer,
/// and a subscription made meanwhile would otherwise get writes answered
/// before it existed.
#[derive(Clone)]
pub struct Subscribed {
    pub topic: Arc<Topic>,
    pub since: u64,
}

/// A switch that closes a client's connection: the HTTP layer closes the
/// socket when it flips to `true`, even while a write is blocked on a client
/// that does not read.
pub type Closer = Arc<watch::Sender<bool>>;

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_clients: usize,
    pub max_clients_per_ip: usize,
    pub max_subscriptions: usize,
    pub queue: usize,
    /// Bytes queued for one client (a message to an empty queue is taken
    /// whatever its size).
    pub queue_bytes: usize,
    /// Bytes queued across all clients.
    pub total_queue_bytes: usize,
}

/// One message for a client: the event name and its JSON data, held once
/// as the SSE frame after its `id:` line (`\nevent:…\ndata:…\n\n`), which
/// is serialised once and shared by every client that gets the same
/// rendering under the same name: queuing one copies no bytes and
/// allocates nothing of its own, and what a message holds is one buffer no
/// larger than what it is charged.
#[derive(Debug)]
pub struct Msg {
    pub name: Arc<str>,
    /// The JSON data: a slice of `tail`.
    pub data: Bytes,
    pub tail: Bytes,
    /// Its bytes charged to its client's queue (given back on drop).
    charge: Option<Charge>,
}

impl Msg {
    pub fn new(name: Arc<str>, data: Bytes) -> Msg {
        let tail = super::sse::frame_tail(&name, &data);
        Msg::shared(name, tail)
    }

    /// A message from its frame tail (`sse::frame_tail` of this name).
    pub fn shared(name: Arc<str>, tail: Bytes) -> Msg {
        let (start, end) = super::sse::tail_data_range(&name, tail.len());
        Msg {
            name,
            data: tail.slice(start..end),
            tail,
            charge: None,
        }
    }

    /// What it costs queued.
    fn cost(&self) -> usize {
        self.data.len() + self.name.len() + 64
    }
}

/// Bytes queued for one client. Once the client is gone (`close`), its
/// bytes no longer count toward the total, even before its queue is
/// dropped.
#[derive(Debug, Default)]
pub(crate) struct Account {
    state: Mutex<AccountState>,
}

#[derive(Debug, Default)]
struct AccountState {
    bytes: usize,
    closed: bool,
}

impl Account {
    fn lock(&self) -> MutexGuard<'_, AccountState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    pub(crate) fn queued(&self) -> usize {
        self.lock().bytes
    }

    /// The client is gone: its bytes leave the total.
    fn close(&self, total: &AtomicUsize) {
        let mut st = self.lock();
        if !st.closed {
            st.closed = true;
            total.fetch_sub(st.bytes, Ordering::AcqRel);
            st.bytes = 0;
        }
    }
}

/// A queued message's bytes, charged to its client and to the total.
#[derive(Debug)]
struct Charge {
    account: Arc<Account>,
    total: Arc<AtomicUsize>,
    n: usize,
}

impl Drop for Charge {
    fn drop(&mut self) {
        let mut st = self.account.lock();
        if !st.closed {
            st.bytes -= self.n;
            self.total.fetch_sub(self.n, Ordering::AcqRel);
        }
    }
}

/// Why a message was not queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Over {
    /// The client's queue holds its cap in bytes.
    Client,
    /// Every client's queues together hold the total.
    Total,
}

#[derive(Debug, PartialEq, Eq)]
pub enum RegisterError {
    TooManyClients,
    TooManyForIp,
}

#[derive(Debug, PartialEq, Eq)]
pub enum SubscribeError {
    /// No client with that id.
    UnknownClient,
    /// The request comes from another IP address than the stream.
    OtherIp,
    /// The client is authenticated as someone else.
    AuthMismatch,
    TooMany,
}

struct Client {
    ip: IpAddr,
    tx: mpsc::Sender<Msg>,
    account: Arc<Account>,
    closer: Closer,
    identity: Arc<Identity>,
    subs: Subscriptions,
}

#[derive(Default)]
struct State {
    clients: HashMap<Arc<str>, Client>,
    per_ip: HashMap<IpAddr, usize>,
    /// Bytes queued across all clients (the broker's counter).
    queued: Arc<AtomicUsize>,
}

impl State {
    fn remove(&mut self, id: &str) -> Option<Client> {
        let c = self.clients.remove(id)?;
        c.account.close(&self.queued);
        if let Some(n) = self.per_ip.get_mut(&c.ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&c.ip);
            }
        }
        Some(c)
    }
}

pub struct Broker {
    limits: Limits,
    state: Mutex<State>,
    /// Subscription requests applied so far (`Subscribed::since`).
    subscribed: AtomicU64,
    count: AtomicUsize,
    /// Bytes queued across all clients (shared with `State`).
    queued: Arc<AtomicUsize>,
}

/// A subscription an event may go to, snapshotted for the fan-out.
#[derive(Clone)]
pub(crate) struct Candidate {
    pub client: Arc<str>,
    pub tx: mpsc::Sender<Msg>,
    pub account: Arc<Account>,
    pub identity: Arc<Identity>,
    pub topic: Arc<Topic>,
    /// When the topic was subscribed (`Subscribed::since`).
    pub since: u64,
}

/// A connected client's end: its id and queue. Dropping it unregisters the
/// client.
pub struct Registration {
    pub id: Arc<str>,
    pub rx: mpsc::Receiver<Msg>,
    pub closed: watch::Receiver<bool>,
    broker: Arc<Broker>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.broker.unregister(&self.id);
    }
}

fn same_auth(a: &Identity, b: &Identity) -> bool {
    match (a.auth(), b.auth()) {
        (None, None) => true,
        (Some(x), Some(y)) => x.id() == y.id() && x.collection.id == y.collection.id,
        _ => false,
    }
}

impl Broker {
    pub fn new(limits: Limits) -> Arc<Broker> {
        let state = State::default();
        let queued = state.queued.clone();
        Arc::new(Broker {
            limits,
            state: Mutex::new(state),
            subscribed: AtomicU64::new(0),
            count: AtomicUsize::new(0),
            queued,
        })
    }

    /// Bytes queued across all clients.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Charges `msg` to `account` (and the total), under both caps.
    pub(crate) fn charge(&self, account: &Arc<Account>, msg: &mut Msg) -> Result<(), Over> {
        let n = msg.cost();
        let mut st = account.lock();
        if st.closed || (st.bytes > 0 && st.bytes + n > self.limits.queue_bytes) {
            return Err(Over::Client);
        }
        let total = self.queued.fetch_add(n, Ordering::AcqRel);
        if total > 0 && total + n > self.limits.total_queue_bytes {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            return Err(Over::Total);
        }
        st.bytes += n;
        drop(st);
        msg.charge = Some(Charge {
            account: account.clone(),
            total: self.queued.clone(),
            n,
        });
        Ok(())
    }

    /// Disconnects the client with the most bytes queued (the one
    /// furthest behind); false when no client has anything queued.
    pub(crate) fn shed_furthest_behind(&self) -> bool {
        let furthest = {
            let st = self.lock();
            st.clients
                .iter()
                .map(|(id, c)| (c.account.queued(), id.clone()))
                .filter(|(q, _)| *q > 0)
                .max_by_key(|(q, _)| *q)
        };
        match furthest {
            Some((queued, id)) => {
                tracing::info!(client = %id, queued, "realtime queues over their total; disconnecting the client furthest behind");
                self.disconnect(&id);
                true
            }
            None => false,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Connected clients.
    pub fn client_count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Registers a new client connected from `ip`; `closer` closes its
    /// connection.
    pub fn register(
        self: &Arc<Self>,
        ip: IpAddr,
        closer: Closer,
    ) -> Result<Registration, RegisterError> {
        let mut st = self.lock();
        if st.clients.len() >= self.limits.max_clients {
            return Err(RegisterError::TooManyClients);
        }
        let from_ip = st.per_ip.get(&ip).copied().unwrap_or(0);
        if from_ip >= self.limits.max_clients_per_ip {
            return Err(RegisterError::TooManyForIp);
        }
        let id: Arc<str> = Arc::from(random_string(40, ALPHANUM));
        let (tx, rx) = mpsc::channel(self.limits.queue.max(1));
        let closed = closer.subscribe();
        st.clients.insert(
            id.clone(),
            Client {
                ip,
                tx,
                account: Arc::default(),
                closer,
                identity: Arc::new(Identity::Guest),
                subs: Subscriptions::new(),
            },
        );
        *st.per_ip.entry(ip).or_insert(0) += 1;
        self.count.store(st.clients.len(), Ordering::Relaxed);
        Ok(Registration {
            id,
            rx,
            closed,
            broker: self.clone(),
        })
    }

    fn unregister(&self, id: &str) {
        let mut st = self.lock();
        st.remove(id);
        self.count.store(st.clients.len(), Ordering::Relaxed);
    }

    /// Disconnects a client (its queue overflowed, or it is gone).
    pub(crate) fn disconnect(&self, id: &str) {
        let removed = {
            let mut st = self.lock();
            let c = st.remove(id);
            self.count.store(st.clients.len(), Ordering::Relaxed);
            c
        };
        if let Some(c) = removed {
            c.closer.send_replace(true);
        }
    }

    /// Disconnects every client (shutdown, or the fan-out fell behind).
    pub fn close_all(&self) {
        let all: Vec<Client> = {
            let mut st = self.lock();
            st.per_ip.clear();
            self.count.store(0, Ordering::Relaxed);
            st.clients.drain().map(|(_, c)| c).collect()
        };
        for c in &all {
            c.account.close(&self.queued);
        }
        for c in all {
            c.closer.send_replace(true);
        }
    }

    /// Replaces a client's subscriptions (PocketBase's `POST /api/realtime`):
    /// the request must come from the client's IP address, and a client
    /// authenticated before must stay the same auth record (a guest may
    /// become authenticated). The request's identity then applies to every
    /// event the client gets.
    pub fn set_subscriptions(
        &self,
        client: &str,
        ip: IpAddr,
        identity: Identity,
        topics: &[String],
    ) -> Result<(), SubscribeError> {
        let mut parsed: heapless::Vec<Arc<Topic>, MAX_SUBSCRIPTIONS> = heapless::Vec::new();
        for raw in topics {
            if raw.is_empty() || parsed.iter().any(|t| &*t.raw == raw.as_str()) {
                continue;
            }
            if parsed.len() >= self.limits.max_subscriptions
                || parsed.push(Arc::new(Topic::parse(raw))).is_err()
            {
                return Err(SubscribeError::TooMany);
            }
        }
        let mut st = self.lock();
        let c = st
            .clients
            .get_mut(client)
            .ok_or(SubscribeError::UnknownClient)?;
        if c.ip != ip {
            return Err(SubscribeError::OtherIp);
        }
        if c.identity.auth().is_some() && !same_auth(&c.identity, &identity) {
            return Err(SubscribeError::AuthMismatch);
        }
        // Under the lock: a write committed after this request's number
        // was taken reaches its new topics.
        let now = self.subscribed.fetch_add(1, Ordering::SeqCst) + 1;
        let mut subs = Subscriptions::new();
        for topic in parsed {
            let since = c
                .subs
                .iter()
                .find(|s| s.topic.raw == topic.raw)
                .map_or(now, |s| s.since);
            // Capacity: `parsed` has the same.
            let _ = subs.push(Subscribed { topic, since });
        }
        c.identity = Arc::new(identity);
        c.subs = subs;
        Ok(())
    }

    /// The subscription sequence now: a write's committed changes take it
    /// before the write is answered, and their events go only to topics
    /// subscribed at or before it.
    pub(crate) fn subscribed(&self) -> u64 {
        self.subscribed.load(Ordering::SeqCst)
    }

    /// Snapshot of the subscriptions an event for record `id` of `coll` may
    /// go to.
    pub(crate) fn candidates(&self, coll: &Collection, id: &str) -> Vec<Candidate> {
        let st = self.lock();
        let mut out = Vec::new();
        for (cid, c) in &st.clients {
            for s in &c.subs {
                if s.topic.matches(&coll.name, &coll.id, id) {
                    out.push(Candidate {
                        client: cid.clone(),
                        tx: c.tx.clone(),
                        account: c.account.clone(),
                        identity: c.identity.clone(),
                        topic: s.topic.clone(),
                        since: s.since,
                    });
                }
            }
        }
        out
    }

    /// Whether any client subscribes to `coll`.
    pub(crate) fn has_subscribers(&self, coll: &Collection) -> bool {
        let st = self.lock();
        st.clients.values().any(|c| {
            c.subs
                .iter()
                .any(|s| s.topic.collection == coll.name || s.topic.collection == coll.id)
        })
    }

    /// An auth record changed: clients authenticated as it see the new
    /// values; if its tokenKey changed (sessions revoked), they become guests.
    pub(crate) fn auth_record_updated(&self, coll: &Collection, record: &Map<String, Value>) {
        let id = record.get("id").and_then(Value::as_str).unwrap_or_default();
        let token_key = record.get("tokenKey").and_then(Value::as_str);
        let mut st = self.lock();
        for c in st.clients.values_mut() {
            let next = match c.identity.auth() {
                Some(a) if a.collection.id == coll.id && a.id() == id => {
                    let old_key = a.record.get("tokenKey").and_then(Value::as_str);
                    if old_key != token_key {
                        Identity::Guest
                    } else {
                        let mut a = a.clone();
                        a.record = Arc::new(record.clone());
                        match &*c.identity {
                            Identity::Superuser(_) => Identity::Superuser(a),
                            _ => Identity::User(a),
                        }
                    }
                }
                _ => continue,
            };
            c.identity = Arc::new(next);
        }
    }

    /// Sends `data` under `topic` to one client that subscribed to exactly
    /// that topic from `ip` (PocketBase's `@oauth2` redirect), then drops
    /// the subscription. False when there is no such client.
    pub fn send_direct(&self, client: &str, ip: IpAddr, topic: &str, data: Bytes) -> bool {
        let mut st = self.lock();
        let Some(c) = st.clients.get_mut(client) else {
            return false;
        };
        if c.ip != ip {
            return false;
        }
        let Some(pos) = c.subs.iter().position(|s| &*s.topic.raw == topic) else {
            return false;
        };
        let _ = c.subs.swap_remove(pos);
        c.tx.try_send(Msg::new(Arc::from(topic), data)).is_ok()
    }

    /// An auth record was deleted: clients authenticated as it become guests.
    pub(crate) fn auth_record_deleted(&self, coll: &Collection, id: &str) {
        self.unset_auth_where(|a| a.collection.id == coll.id && a.id() == id);
    }

    /// Clients authenticated through a collection whose token secret changed
    /// (or that is gone) become guests.
    pub(crate) fn unset_auth_where(&self, pred: impl Fn(&crate::auth::AuthRecord) -> bool) {
        let mut st = self.lock();
        for c in st.clients.values_mut() {
            if c.identity.auth().is_some_and(&pred) {
                c.identity = Arc::new(Identity::Guest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(max: usize, per_ip: usize) -> Arc<Broker> {
        Broker::new(Limits {
            max_clients: max,
            max_clients_per_ip: per_ip,
            max_subscriptions: 3,
            queue: 2,
            queue_bytes: 1000,
            total_queue_bytes: 2500,
        })
    }

    fn closer() -> Closer {
        Arc::new(watch::channel(false).0)
    }

    #[test]
    fn client_limits() {
        let b = broker(3, 2);
        let ip1: IpAddr = [10, 0, 0, 1].into();
        let ip2: IpAddr = [10, 0, 0, 2].into();
        let r1 = b.register(ip1, closer()).unwrap();
        let _r2 = b.register(ip1, closer()).unwrap();
        assert_eq!(
            b.register(ip1, closer()).err(),
            Some(RegisterError::TooManyForIp)
        );
        let _r3 = b.register(ip2, closer()).unwrap();
        assert_eq!(
            b.register(ip2, closer()).err(),
            Some(RegisterError::TooManyClients)
        );
        assert_eq!(b.client_count(), 3);
        drop(r1);
        assert_eq!(b.client_count(), 2);
        assert!(b.register(ip1, closer()).is_ok());
    }

    #[test]
    fn subscriptions() {
        let b = broker(10, 10);
        let ip: IpAddr = [127, 0, 0, 1].into();
        let r = b.register(ip, closer()).unwrap();
        let topics = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            b.set_subscriptions("nope", ip, Identity::Guest, &[]),
            Err(SubscribeError::UnknownClient)
        );
        assert_eq!(
            b.set_subscriptions(&r.id, [1, 1, 1, 1].into(), Identity::Guest, &[]),
            Err(SubscribeError::OtherIp)
        );
        // Duplicates and empty topics do not count.
        b.set_subscriptions(
            &r.id,
            ip,
            Identity::Guest,
            &topics(&["a/*", "a/*", "", "b/x", "c"]),
        )
        .unwrap();
        assert_eq!(
            b.set_subscriptions(&r.id, ip, Identity::Guest, &topics(&["a", "b", "c", "d"])),
            Err(SubscribeError::TooMany)
        );
        let coll = crate::schema::Collection {
            name: "b".into(),
            id: "pbc_b".into(),
            kind: crate::schema::CollectionType::Base,
            system: false,
            fields: vec![],
            indexes: vec![],
            list_rule: None,
            view_rule: None,
            create_rule: None,
            update_rule: None,
            delete_rule: None,
            options: Map::new(),
            created: String::new(),
            updated: String::new(),
            derived: Default::default(),
        };
        assert_eq!(b.candidates(&coll, "x").len(), 1);
        assert_eq!(b.candidates(&coll, "y").len(), 0);
        assert!(b.has_subscribers(&coll));

        // When each topic was subscribed: a write committed now (`upto`)
        // reaches the topics subscribed so far, not one subscribed after —
        // by another client, or by this one in a later request — while a
        // topic kept through a later request keeps its place.
        let upto = b.subscribed();
        let other = b.register(ip, closer()).unwrap();
        b.set_subscriptions(&other.id, ip, Identity::Guest, &topics(&["b/*"]))
            .unwrap();
        b.set_subscriptions(&r.id, ip, Identity::Guest, &topics(&["b/x", "b/*"]))
            .unwrap();
        let reached = |upto: u64| {
            let mut v: Vec<(String, String)> = b
                .candidates(&coll, "x")
                .into_iter()
                .filter(|c| c.since <= upto)
                .map(|c| (c.client.to_string(), c.topic.raw.to_string()))
                .collect();
            v.sort();
            v
        };
        assert_eq!(reached(upto), vec![(r.id.to_string(), "b/x".to_string())]);
        let mut all = vec![
            (r.id.to_string(), "b/*".to_string()),
            (r.id.to_string(), "b/x".to_string()),
            (other.id.to_string(), "b/*".to_string()),
        ];
        all.sort();
        assert_eq!(reached(b.subscribed()), all);
    }

    /// A message's data is its frame tail's bytes, not a second copy.
    #[test]
    fn message_data_is_a_slice_of_its_frame() {
        let m = Msg::new(Arc::from("posts/*"), Bytes::from_static(br#"{"a":1}"#));
        assert_eq!(&m.data[..], br#"{"a":1}"#);
        assert_eq!(&m.tail[..], b"\nevent:posts/*\ndata:{\"a\":1}\n\n");
        let t = m.tail.as_ptr_range();
        assert!(t.contains(&m.data.as_ptr()));
        assert!(m.cost() >= m.tail.len());
    }

    #[test]
    fn queued_bytes_are_bounded_and_given_back() {
        let b = broker(10, 10);
        let ip: IpAddr = [127, 0, 0, 1].into();
        let r1 = b.register(ip, closer()).unwrap();
        let r2 = b.register(ip, closer()).unwrap();
        let r3 = b.register(ip, closer()).unwrap();
        let acct = |id: &str| b.lock().clients.get(id).unwrap().account.clone();
        let (a1, a2, a3) = (acct(&r1.id), acct(&r2.id), acct(&r3.id));
        let charged = |a: &Arc<Account>, n: usize| {
            let mut m = Msg::new(Arc::from("t"), Bytes::from(vec![b'x'; n]));
            b.charge(a, &mut m).map(|()| m)
        };
        // A message to an empty queue is taken whatever its size.
        let big = charged(&a1, 1500).expect("first message");
        assert_eq!(charged(&a1, 10).err(), Some(Over::Client));
        let small = charged(&a2, 500).expect("room for another client");
        assert_eq!(charged(&a3, 900).err(), Some(Over::Total));
        assert!(b.queued_bytes() > 2000);
        // The furthest behind is shed; its bytes leave the total at once.
        assert!(b.shed_furthest_behind());
        assert!(!b.lock().clients.contains_key(&*r1.id));
        assert!(b.queued_bytes() < 1000);
        let third = charged(&a3, 900).expect("room again");
        drop(third);
        drop(big);
        drop(small);
        assert_eq!(b.queued_bytes(), 0);
        assert_eq!(a1.queued() + a2.queued(), 0);
        drop((r1, r2, r3));
    }
}
