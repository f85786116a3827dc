//! From committed changes to client queues.
//!
//! ```text
//! writer thread, after COMMIT ── Publisher::committed ──► (bounded channel) ──► fan-out task
//!   (auth-record changes applied to clients first)           one reader connection per round:
//!                                                             rules + filter + rendering per group
//! writer thread, before a DELETE ── Publisher::prepare_delete (same fan-out, rendered while the
//!   record and what its rules read still exist; delivered after COMMIT in order)
//! ```
//!
//! An event goes to a subscription when the subscriber passes the
//! collection's list rule (`COLLECTION/*`) or view rule (`COLLECTION/ID`),
//! evaluated against the record as committed (a delete: as it was before),
//! and the subscription's own `filter` option. Subscribers are grouped so one
//! evaluation serves many: a rule that does not read `@request.auth` is
//! evaluated once for every non-superuser, one that does once per auth
//! record (all guests share one); `@request.query`/`@request.headers` add the
//! subscription's options to the key. A non-superuser's `filter` cannot read
//! `@request.*` itself, but each collection it joins brings in its list rule
//! as the subscriber: the filter is grouped by what those rules read
//! (`client_filter_reads`). Rendering (visibility, `expand`, `fields`) is
//! shared the same way. Superusers pass every rule.

use super::broker::{Broker, Candidate, Msg};
use super::topic::{Target, Topic};
use crate::auth::Identity;
use crate::error::ApiResult;
use crate::rules::{self, RequestCtx};
use crate::schema::{Collection, Schema};
use crate::store::records::{passes_snapshot, passes_snapshot_all, Cond};
use crate::store::Conn as Connection;
use crate::store::{Action, Change, ChangeSink, Prepared, Store};
use bytes::Bytes;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

/// How a record is shown to a subscriber: the records API's own visibility,
/// expand and fields (`api::records`), injected so that this module does not
/// depend on the API layer.
pub type Renderer = fn(
    &Connection,
    &Schema,
    &Arc<Collection>,
    Map<String, Value>,
    &RequestCtx,
    &str,
    &str,
) -> ApiResult<Value>;

/// Committed write batches waiting for the fan-out; when the fan-out falls
/// this far behind, every client is disconnected (they reconnect and
/// resubscribe) instead of buffering without bound.
const PENDING_WRITES: usize = 1024;
/// Most writes handled in one fan-out round (one reader connection).
const ROUND: usize = 64;

/// Deliveries prepared before a delete.
struct PreparedDeliveries(Vec<(Candidate, Msg)>);

/// The change sink the store hands committed writes to.
pub struct Publisher {
    broker: Arc<Broker>,
    /// Each committed batch with the broker's subscription sequence at its
    /// commit (`Broker::subscribed`).
    tx: mpsc::Sender<(u64, Vec<Change>)>,
    render: Renderer,
    max_filter_len: usize,
}

impl Publisher {
    /// Creates the publisher and starts the fan-out task (which reads through
    /// `store` while it lives).
    pub fn start(
        broker: Arc<Broker>,
        store: Weak<Store>,
        render: Renderer,
        max_filter_len: usize,
    ) -> Arc<Publisher> {
        let (tx, rx) = mpsc::channel(PENDING_WRITES);
        tokio::spawn(run(rx, broker.clone(), store, render, max_filter_len));
        Arc::new(Publisher {
            broker,
            tx,
            render,
            max_filter_len,
        })
    }
}

impl ChangeSink for Publisher {
    fn wants(&self, _coll: &Collection, _action: Action) -> bool {
        // Auth-record changes matter to connected clients even without a
        // subscription to their collection.
        self.broker.client_count() > 0
    }

    fn prepare_delete(
        &self,
        conn: &Connection,
        schema: &Schema,
        coll: &Arc<Collection>,
        record: &Map<String, Value>,
    ) -> Option<Prepared> {
        if !self.broker.has_subscribers(coll) {
            return None;
        }
        let out = fan_out(
            conn,
            schema,
            &self.broker,
            coll,
            Action::Delete,
            record,
            self.render,
            self.max_filter_len,
        );
        Some(Box::new(PreparedDeliveries(out)))
    }

    fn lost(&self) {
        // Clients reconnect and resubscribe, as when the fan-out falls
        // behind.
        self.broker.close_all();
    }

    fn committed(&self, changes: Vec<Change>) {
        // Auth state first, in commit order: an event published after a
        // revocation is already checked as a guest.
        for ch in &changes {
            if !ch.collection.is_auth() {
                continue;
            }
            match ch.action {
                Action::Update => self.broker.auth_record_updated(&ch.collection, &ch.record),
                Action::Delete => {
                    let id = ch
                        .record
                        .get("id")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    self.broker.auth_record_deleted(&ch.collection, id);
                }
                Action::Create => {}
            }
        }
        match self.tx.try_send((self.broker.subscribed(), changes)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                tracing::warn!(
                    "realtime fan-out is {PENDING_WRITES} writes behind; disconnecting all realtime clients"
                );
                self.broker.close_all();
            }
            Err(TrySendError::Closed(_)) => {}
        }
    }
}

async fn run(
    mut rx: mpsc::Receiver<(u64, Vec<Change>)>,
    broker: Arc<Broker>,
    store: Weak<Store>,
    render: Renderer,
    max_filter_len: usize,
) {
    while let Some(first) = rx.recv().await {
        let mut round = vec![first];
        while round.len() < ROUND {
            match rx.try_recv() {
                Ok(more) => round.push(more),
                Err(_) => break,
            }
        }
        let Some(store) = store.upgrade() else { break };
        let schema = store.schema();
        let broker = broker.clone();
        let res = store
            .read(move |conn| {
                for (upto, changes) in round {
                    for change in changes {
                        publish(conn, &schema, &broker, change, upto, render, max_filter_len);
                    }
                }
                Ok(())
            })
            .await;
        if let Err(e) = res {
            tracing::warn!(error = %e, "realtime fan-out failed");
        }
    }
}

/// Delivers one committed change (rendering it now unless it was prepared
/// before a delete) to the topics subscribed by its commit (`upto`).
fn publish(
    conn: &Connection,
    schema: &Schema,
    broker: &Broker,
    change: Change,
    upto: u64,
    render: Renderer,
    max_filter_len: usize,
) {
    let mut deliveries = match change.prepared {
        Some(p) => match p.downcast::<PreparedDeliveries>() {
            Ok(p) => p.0,
            Err(_) => return,
        },
        // Unprepared: nobody here listened when it was deleted — unless it
        // was read from the database's change log (PostgreSQL: the delete
        // may be another process's), then it is shown from the row as it
        // was.
        None if change.action == Action::Delete && !change.from_log => return,
        None => {
            // The current definition (rules may have changed since); a
            // collection that is gone has nobody left to tell.
            let Some(coll) = schema.by_id(&change.collection.id).cloned() else {
                return;
            };
            fan_out(
                conn,
                schema,
                broker,
                &coll,
                change.action,
                &change.record,
                render,
                max_filter_len,
            )
        }
    };
    deliveries.retain(|(c, _)| c.since <= upto);
    deliver(broker, deliveries);
}

/// Queues each message; a client whose queue is full (in events or in
/// bytes) is disconnected. Over the total of bytes queued, the client
/// furthest behind goes first.
fn deliver(broker: &Broker, deliveries: Vec<(Candidate, Msg)>) {
    use super::broker::Over;
    for (cand, mut msg) in deliveries {
        match broker.charge(&cand.account, &mut msg) {
            Ok(()) => {}
            Err(Over::Client) => {
                tracing::info!(client = %cand.client, "realtime client too far behind (bytes queued); disconnecting");
                broker.disconnect(&cand.client);
                continue;
            }
            Err(Over::Total) => {
                // The client furthest behind goes (its bytes leave the
                // total at once), then this message is tried again.
                let retried =
                    broker.shed_furthest_behind() && broker.charge(&cand.account, &mut msg).is_ok();
                if !retried {
                    tracing::info!(client = %cand.client, "realtime queues full; disconnecting");
                    broker.disconnect(&cand.client);
                    continue;
                }
            }
        }
        match cand.tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                tracing::info!(client = %cand.client, "realtime client too slow; disconnecting");
                broker.disconnect(&cand.client);
            }
            Err(TrySendError::Closed(_)) => broker.disconnect(&cand.client),
        }
    }
}

/// Who a group key is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Who {
    /// Any non-superuser (the expression does not read `@request.auth`).
    Anyone,
    Superuser(String),
    Guest,
    Record(String, String),
}

fn who(identity: &Identity) -> Who {
    match identity {
        Identity::Guest => Who::Guest,
        Identity::Superuser(a) => Who::Superuser(a.id().to_string()),
        Identity::User(a) => Who::Record(a.collection.id.clone(), a.id().to_string()),
    }
}

/// [`Who`] borrowed from the subscriber's identity (a rule check's key,
/// made for every subscriber: no copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum WhoRef<'a> {
    Anyone,
    Superuser(&'a str),
    Guest,
    Record(&'a str, &'a str),
}

fn who_ref(identity: &Identity) -> WhoRef<'_> {
    match identity {
        Identity::Guest => WhoRef::Guest,
        Identity::Superuser(a) => WhoRef::Superuser(a.id()),
        Identity::User(a) => WhoRef::Record(&a.collection.id, a.id()),
    }
}

/// What of the request an expression's result may depend on (beyond what
/// is the same for every realtime check: method, context, the clock).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Reads {
    /// `@request.auth.*`: the subscriber's identity.
    auth: bool,
    /// `@request.query.*` / `@request.headers.*`: the subscription's options.
    options: bool,
}

impl Reads {
    /// What an expression reads, judged from its text (a mention inside a
    /// string literal counts too: too many, never too few).
    fn of(expr: &str) -> Reads {
        Reads {
            auth: expr.contains("@request.auth"),
            options: expr.contains("@request.query") || expr.contains("@request.headers"),
        }
    }

    fn or(self, other: Reads) -> Reads {
        Reads {
            auth: self.auth || other.auth,
            options: self.options || other.options,
        }
    }

    /// The part of a group key this dependence asks for: the auth record
    /// only if it reads `@request.auth`, the options only if it reads
    /// `@request.query` / `@request.headers`.
    fn key(self, identity: &Identity, topic: &Topic) -> (Who, String) {
        let w = if self.auth {
            who(identity)
        } else {
            Who::Anyone
        };
        let o = if self.options {
            topic.options_key()
        } else {
            String::new()
        };
        (w, o)
    }
}

fn depends(expr: &str, identity: &Identity, topic: &Topic) -> (Who, String) {
    Reads::of(expr).key(identity, topic)
}

/// What a non-superuser's `filter` reads of the request. The filter itself
/// cannot name `@request.*` (403), but every collection it joins through a
/// relation (`author.name`) or a back-relation (`comments_via_post.title`)
/// brings in that collection's list rule, compiled with the subscriber's
/// request (PocketBase's `updateQueryWithCollectionListRule`, applied by
/// `filter::Query` for client access): the filter's result depends on
/// whatever those rules read. The field paths are followed as the filter
/// compiler follows them, erring towards too many collections (every
/// `_via_` reading of a name, the last step too), never too few; rules are
/// compiled privileged, so their own joins add no further rules.
fn client_filter_reads(schema: &Schema, coll: &Collection, filter: &str) -> Reads {
    let Ok(expr) = crate::filter::parse(filter) else {
        // Rejected for every subscriber alike.
        return Reads::default();
    };
    let mut reads = Reads::default();
    expr.visit_terms(&mut |t| {
        if let crate::filter::Term::Ident { name, .. } = t {
            if name.starts_with('@') || !name.contains('.') {
                return;
            }
            let props: Vec<&str> = name.split('.').collect();
            joined_reads(schema, coll, &props, 0, &mut reads);
        }
    });
    reads
}

/// Follows `props` from `coll`, adding what each joined collection's list
/// rule reads.
fn joined_reads(schema: &Schema, coll: &Collection, props: &[&str], depth: usize, out: &mut Reads) {
    let Some((&prop, rest)) = props.split_first() else {
        return;
    };
    // The filter language caps nesting; this bound is only a backstop.
    if depth > crate::filter::MAX_NESTED_RELATIONS + 1 {
        return;
    }
    let load = |name_or_id: &str| -> Option<&Arc<Collection>> {
        if name_or_id == coll.name || name_or_id == coll.id {
            schema.by_id(&coll.id)
        } else {
            schema.get(name_or_id)
        }
    };
    let mut next: Vec<&Arc<Collection>> = Vec::new();
    match coll.field(prop) {
        Some(f) => {
            // `rel.id` as the last step of a single relation reads the
            // column itself, no join.
            let own_id = !f.is_multiple() && rest == ["id"];
            if let Some(rel) = f.relation_collection().and_then(load) {
                if !own_id {
                    next.push(rel);
                }
            }
            // Any other field (JSON and geoPoint paths included) ends the
            // joins.
        }
        None => {
            // `collection_via_field`, however the name splits.
            for (i, _) in prop.match_indices("_via_") {
                let (cname, fname) = (&prop[..i], &prop[i + 5..]);
                if let Some(back) = load(cname) {
                    let points_here = back
                        .field(fname)
                        .and_then(|bf| bf.relation_collection())
                        .is_some_and(|c| c == coll.id);
                    if points_here {
                        next.push(back);
                    }
                }
            }
        }
    }
    for joined in next {
        if let Some(rule) = joined.list_rule.as_deref() {
            *out = out.or(Reads::of(rule));
        }
        joined_reads(schema, joined, rest, depth + 1, out);
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct RuleKey<'a> {
    view: bool,
    who: WhoRef<'a>,
    options: String,
}

#[derive(PartialEq, Eq, Hash)]
struct FilterKey {
    superuser: bool,
    filter: String,
    sort: String,
    who: Who,
    options: String,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct RenderKey {
    who: Who,
    expand: String,
    fields: String,
    options: String,
}

/// A token that no longer verifies (its collection is gone or its secret
/// changed) makes the subscriber a guest, as in PocketBase.
/// `seen` memoises the answer per auth collection (as the token was
/// verified against it).
fn effective(
    schema: &Schema,
    identity: &Arc<Identity>,
    seen: &mut HashMap<*const Collection, bool>,
) -> Arc<Identity> {
    let Some(a) = identity.auth() else {
        return identity.clone();
    };
    let valid = *seen.entry(Arc::as_ptr(&a.collection)).or_insert_with(|| {
        schema.by_id(&a.collection.id).is_some_and(|now| {
            now.token_settings("authToken").1 == a.collection.token_settings("authToken").1
        })
    });
    if valid {
        identity.clone()
    } else {
        Arc::new(Identity::Guest)
    }
}

fn request_ctx(identity: &Identity, topic: &Topic) -> RequestCtx {
    RequestCtx {
        identity: identity.clone(),
        method: "GET".into(),
        context: "realtime".into(),
        query: Arc::new(topic.query_map()),
        headers: Arc::new(topic.headers_map()),
        body: Map::new(),
        files: Map::new(),
    }
}

/// Whether the record passes each condition (all checked together).
fn passes_all(
    conn: &Connection,
    coll: &Collection,
    record: &Map<String, Value>,
    conds: &[Cond],
) -> Vec<bool> {
    if conds.is_empty() {
        return Vec::new();
    }
    match passes_snapshot_all(conn, coll, record, conds) {
        Ok(v) => v,
        Err(e) => {
            tracing::debug!(collection = %coll.name, error = %e, "realtime access check failed");
            vec![false; conds.len()]
        }
    }
}

fn passes(conn: &Connection, coll: &Collection, record: &Map<String, Value>, cond: &Cond) -> bool {
    match passes_snapshot(conn, coll, record, cond) {
        Ok(ok) => ok,
        Err(e) => {
            tracing::debug!(collection = %coll.name, error = %e, "realtime access check failed");
            false
        }
    }
}

/// The work one event cost (tests and debug logs).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Work {
    rules: usize,
    filters: usize,
    renders: usize,
}

/// Evaluates and renders one event for every matching subscription.
#[allow(clippy::too_many_arguments)]
fn fan_out(
    conn: &Connection,
    schema: &Schema,
    broker: &Broker,
    coll: &Arc<Collection>,
    action: Action,
    record: &Map<String, Value>,
    render: Renderer,
    max_filter_len: usize,
) -> Vec<(Candidate, Msg)> {
    let mut work = Work::default();
    let out = fan_out_counted(
        conn,
        schema,
        broker,
        coll,
        action,
        record,
        render,
        max_filter_len,
        &mut work,
    );
    if !out.is_empty() {
        tracing::trace!(collection = %coll.name, messages = out.len(), ?work, "realtime fan-out");
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn fan_out_counted(
    conn: &Connection,
    schema: &Schema,
    broker: &Broker,
    coll: &Arc<Collection>,
    action: Action,
    record: &Map<String, Value>,
    render: Renderer,
    max_filter_len: usize,
    work: &mut Work,
) -> Vec<(Candidate, Msg)> {
    let id = record.get("id").and_then(Value::as_str).unwrap_or_default();
    let candidates = broker.candidates(coll, id);
    if candidates.is_empty() {
        return Vec::new();
    }
    let mut filter_ok: HashMap<FilterKey, bool> = HashMap::new();
    let mut rendered: HashMap<RenderKey, Option<Bytes>> = HashMap::new();
    // What each distinct client filter reads through its joins.
    let mut client_reads: HashMap<String, Reads> = HashMap::new();
    // What each collection rule reads, judged once per event.
    let list_reads = coll.list_rule.as_deref().map(Reads::of).unwrap_or_default();
    let view_reads = coll.view_rule.as_deref().map(Reads::of).unwrap_or_default();
    // Whether each auth collection's tokens still verify, once per event.
    let mut token_ok: HashMap<*const Collection, bool> = HashMap::new();
    // 1. The collection rule, once per group, every group in one pass: the
    // conditions are compiled per group first, then checked together (one
    // query for all the groups whose compiled SQL has the same shape, as
    // with one rule whose `@request.auth.id` differs per subscriber).
    // `None`: the subscriber is refused (or gone); `Some(i)`: passed with
    // rule verdict `i` (`usize::MAX`: no check needed).
    let identities: Vec<Arc<Identity>> = candidates
        .iter()
        .map(|c| effective(schema, &c.identity, &mut token_ok))
        .collect();
    let mut verdict_of: Vec<Option<usize>> = Vec::with_capacity(candidates.len());
    let mut conds: Vec<Cond> = Vec::new();
    let queue_bytes = broker.limits().queue_bytes;
    {
        let mut rule_ok: HashMap<RuleKey<'_>, Option<usize>> = HashMap::new();
        let mut last: Option<(RuleKey<'_>, Option<usize>)> = None;
        for (cand, identity) in candidates.iter().zip(&identities) {
            let topic = &cand.topic;
            let v = if identity.is_superuser() {
                Some(usize::MAX)
            } else {
                let view = matches!(topic.target, Target::Record(_));
                let rule = if view {
                    coll.view_rule.as_deref()
                } else {
                    coll.list_rule.as_deref()
                };
                match rule {
                    None => None,
                    Some(r) if r.trim().is_empty() => Some(usize::MAX),
                    Some(r) => {
                        let reads = if view { view_reads } else { list_reads };
                        let key = RuleKey {
                            view,
                            who: if reads.auth {
                                who_ref(identity)
                            } else {
                                WhoRef::Anyone
                            },
                            options: if reads.options {
                                topic.options_key()
                            } else {
                                String::new()
                            },
                        };
                        match &last {
                            // Neighbours often share a group: compared, not hashed.
                            Some((k, v)) if *k == key => *v,
                            _ => {
                                let v = *rule_ok.entry(key.clone()).or_insert_with(|| {
                                    work.rules += 1;
                                    let ctx = request_ctx(identity, topic);
                                    match rules::rule_cond(schema, coll, Some(r), &ctx) {
                                        Ok(Some(cond)) => {
                                            conds.push(cond);
                                            Some(conds.len() - 1)
                                        }
                                        Ok(None) => None,
                                        Err(e) => {
                                            tracing::debug!(error = %e, "realtime rule failed");
                                            None
                                        }
                                    }
                                });
                                last = Some((key, v));
                                v
                            }
                        }
                    }
                }
            };
            verdict_of.push(v);
        }
    }
    let passed = passes_all(conn, coll, record, &conds);
    let mut last_render: Option<(RenderKey, Option<Bytes>)> = None;
    let mut last_tail: Option<(Arc<str>, Bytes, Bytes)> = None;
    let mut out = Vec::with_capacity(candidates.len());
    for ((cand, verdict), identity) in candidates.into_iter().zip(verdict_of).zip(identities) {
        match verdict {
            None => continue,
            Some(usize::MAX) => {}
            Some(i) if passed.get(i).copied().unwrap_or(false) => {}
            Some(_) => continue,
        }
        // A client already a full queue behind is not rendered for: it
        // goes (and costs nothing more).
        if cand.account.queued() >= queue_bytes {
            tracing::info!(client = %cand.client, "realtime client too far behind (bytes queued); disconnecting");
            broker.disconnect(&cand.client);
            continue;
        }
        let topic = &cand.topic;
        let superuser = identity.is_superuser();
        // 2. The subscription's own filter, once per distinct filter.
        let filter = topic.option("filter");
        if !filter.is_empty() {
            let sort = topic.option("sort");
            let (who, options) = if superuser {
                depends(filter, &identity, topic)
            } else {
                // Non-superusers cannot read @request.* in a filter, but
                // the list rules of the collections it joins can.
                let reads = match client_reads.get(filter) {
                    Some(r) => *r,
                    None => {
                        let r = client_filter_reads(schema, coll, filter);
                        client_reads.insert(filter.to_string(), r);
                        r
                    }
                };
                reads.key(&identity, topic)
            };
            let key = FilterKey {
                superuser,
                filter: filter.to_string(),
                sort: sort.to_string(),
                who,
                options,
            };
            let ok = *filter_ok.entry(key).or_insert_with(|| {
                work.filters += 1;
                let ctx = request_ctx(&identity, topic);
                match rules::filter_cond(schema, coll, &ctx, filter, sort, max_filter_len) {
                    Ok(cond) => passes(conn, coll, record, &cond),
                    Err(_) => false,
                }
            });
            if !ok {
                continue;
            }
        }
        // 3. The record as this subscriber may see it, once per shape.
        let expand = topic.option("expand");
        let fields = topic.option("fields");
        let personal = coll.is_auth() || !expand.is_empty();
        let key = RenderKey {
            who: if superuser || personal {
                who(&identity)
            } else {
                Who::Anyone
            },
            expand: expand.to_string(),
            fields: fields.to_string(),
            options: if personal {
                topic.options_key()
            } else {
                String::new()
            },
        };
        // Neighbours usually share a shape: compared, not hashed again.
        let data = match &last_render {
            Some((k, d)) if *k == key => d.clone(),
            _ => {
                let d = rendered
                    .entry(key.clone())
                    .or_insert_with(|| {
                        work.renders += 1;
                        let ctx = request_ctx(&identity, topic);
                        match render(conn, schema, coll, record.clone(), &ctx, expand, fields) {
                            Ok(v) => Some(message_data(action, &v)),
                            Err(e) => {
                                tracing::debug!(error = %e, "realtime render failed");
                                None
                            }
                        }
                    })
                    .clone();
                last_render = Some((key, d.clone()));
                d
            }
        };
        if let Some(data) = data {
            let name = topic.raw.clone();
            // The frame tail, serialised once per (event name, rendering):
            // neighbours usually share both.
            let tail = match &last_tail {
                Some((n, d, t)) if **n == *name && d.as_ptr() == data.as_ptr() => t.clone(),
                _ => {
                    let t = super::sse::frame_tail(&name, &data);
                    last_tail = Some((name.clone(), data.clone(), t.clone()));
                    t
                }
            };
            out.push((cand, Msg::shared(name, tail)));
        }
    }
    out
}

/// PocketBase's message data: `{"record":{...},"action":"..."}` (in that
/// order, as its Go struct serialises).
fn message_data(action: Action, record: &Value) -> Bytes {
    let mut s = String::from("{\"record\":");
    s.push_str(&record.to_string());
    s.push_str(",\"action\":\"");
    s.push_str(action.as_str());
    s.push_str("\"}");
    Bytes::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthRecord;
    use crate::realtime::broker::Limits;
    use crate::schema::parse::collection_from_json;
    use serde_json::json;
    use std::net::IpAddr;

    /// A broker roomy enough for every test here (8 events queued a client).
    fn test_broker() -> Arc<Broker> {
        Broker::new(Limits {
            max_clients: 1000,
            max_clients_per_ip: 1000,
            max_subscriptions: 8,
            queue: 8,
            queue_bytes: 1 << 20,
            total_queue_bytes: 8 << 20,
        })
    }

    fn plain(
        _: &Connection,
        _: &Schema,
        coll: &Arc<Collection>,
        r: Map<String, Value>,
        ctx: &RequestCtx,
        _: &str,
        fields: &str,
    ) -> ApiResult<Value> {
        let v = crate::records::render::visible(coll, &r, &ctx.identity, &[]);
        Ok(crate::records::render::pick_fields(v, fields))
    }

    fn coll(v: Value) -> Arc<Collection> {
        Arc::new(collection_from_json(&v).expect("collection"))
    }

    /// Many subscribers, few evaluations: guests share one, users one each
    /// only when the rule reads `@request.auth`.
    #[test]
    fn grouped_evaluation() {
        let id = json!({"name": "id", "type": "text", "primaryKey": true, "system": true});
        let users = coll(
            json!({"id": "_pb_users_auth_", "name": "users", "type": "auth",
            "fields": [id.clone(), {"name": "tokenKey", "type": "text", "hidden": true}]}),
        );
        let open = coll(json!({"id": "pbc_open", "name": "open", "type": "base",
            "listRule": "title != ''", "viewRule": "title != ''",
            "fields": [id.clone(), {"name": "title", "type": "text"},
                       {"name": "secret", "type": "text", "hidden": true}]}));
        let mine = coll(json!({"id": "pbc_mine", "name": "mine", "type": "base",
            "listRule": "owner = @request.auth.id", "viewRule": "owner = @request.auth.id",
            "fields": [id, {"name": "title", "type": "text"}, {"name": "owner", "type": "text"}]}));
        let schema = Schema::new(vec![(*users).clone(), (*open).clone(), (*mine).clone()]);
        let broker = test_broker();
        let ip: IpAddr = [127, 0, 0, 1].into();
        let mut regs = Vec::new();
        let topics = vec!["open/*".to_string(), "mine/*".to_string()];
        for i in 0..30 {
            let reg = broker
                .register(ip, Arc::new(tokio::sync::watch::channel(false).0))
                .expect("register");
            let identity = if i < 20 {
                Identity::Guest
            } else {
                let mut rec = Map::new();
                rec.insert("id".into(), json!(format!("user{i}")));
                Identity::User(AuthRecord {
                    collection: users.clone(),
                    record: rec.into(),
                })
            };
            broker
                .set_subscriptions(&reg.id, ip, identity, &topics)
                .expect("subscribe");
            regs.push(reg);
        }
        let conn = Connection::open_in_memory().expect("sqlite");
        let run = |coll: &Arc<Collection>, rec: Value| {
            let mut work = Work::default();
            let rec = rec.as_object().cloned().expect("object");
            let out = fan_out_counted(
                &conn,
                &schema,
                &broker,
                coll,
                Action::Create,
                &rec,
                plain,
                3500,
                &mut work,
            );
            (out.len(), work)
        };
        // A rule without @request.auth: one evaluation, one rendering for 30.
        let (n, work) = run(&open, json!({"id": "r1", "title": "t", "secret": "s"}));
        assert_eq!(n, 30);
        assert_eq!(
            work,
            Work {
                rules: 1,
                filters: 0,
                renders: 1
            }
        );
        // Owner rule: all guests share one evaluation; each user has one.
        let (n, work) = run(&mine, json!({"id": "r2", "title": "t", "owner": "user25"}));
        assert_eq!(n, 1);
        assert_eq!(work.rules, 1 + 10);
        assert_eq!(work.renders, 1);
        // fan_out only renders; queuing is `deliver`'s.
        assert!(regs[0].rx.try_recv().is_err());
        // The rendered record hides hidden fields from non-superusers.
        let rec = json!({"id": "r3", "title": "t", "secret": "s"});
        let out = fan_out(
            &conn,
            &schema,
            &broker,
            &open,
            Action::Update,
            rec.as_object().expect("object"),
            plain,
            3500,
        );
        let data = String::from_utf8_lossy(&out[0].1.data).to_string();
        assert_eq!(
            data,
            r#"{"record":{"collectionId":"pbc_open","collectionName":"open","id":"r3","title":"t"},"action":"update"}"#
        );
    }

    /// A rule read per subscriber (`owner = @request.auth.id`), more
    /// subscribers than one statement checks: every group is checked in
    /// the same pass, and exactly the owner passes, wherever it sits among
    /// the others; a rule that refuses everyone sends nothing.
    #[test]
    fn rule_checked_for_all_subscribers_in_one_pass() {
        let id = json!({"name": "id", "type": "text", "primaryKey": true, "system": true});
        let users = coll(
            json!({"id": "_pb_users_auth_", "name": "users", "type": "auth",
            "fields": [id.clone(), {"name": "tokenKey", "type": "text", "hidden": true}]}),
        );
        let mine = coll(json!({"id": "pbc_mine", "name": "mine", "type": "base",
            "listRule": "owner = @request.auth.id && title != 'hidden'",
            "viewRule": "owner = @request.auth.id",
            "fields": [id, {"name": "title", "type": "text"}, {"name": "owner", "type": "text"}]}));
        let schema = Schema::new(vec![(*users).clone(), (*mine).clone()]);
        let broker = test_broker();
        let ip: IpAddr = [127, 0, 0, 1].into();
        let mut regs = Vec::new();
        let mut client_of = HashMap::new();
        for i in 0..75 {
            let reg = broker
                .register(ip, Arc::new(tokio::sync::watch::channel(false).0))
                .expect("register");
            let mut rec = Map::new();
            rec.insert("id".into(), json!(format!("user{i}")));
            let identity = Identity::User(AuthRecord {
                collection: users.clone(),
                record: rec.into(),
            });
            broker
                .set_subscriptions(&reg.id, ip, identity, &["mine/*".to_string()])
                .expect("subscribe");
            client_of.insert(reg.id.to_string(), i);
            regs.push(reg);
        }
        let conn = Connection::open_in_memory().expect("sqlite");
        for owner in [0, 31, 32, 33, 64, 74] {
            let rec = json!({"id": "r", "title": "t", "owner": format!("user{owner}")});
            let mut work = Work::default();
            let out = fan_out_counted(
                &conn,
                &schema,
                &broker,
                &mine,
                Action::Create,
                rec.as_object().expect("object"),
                plain,
                3500,
                &mut work,
            );
            assert_eq!(work.rules, 75);
            let got: Vec<usize> = out.iter().map(|(c, _)| client_of[&*c.client]).collect();
            assert_eq!(got, vec![owner], "owner user{owner}");
        }
        let rec = json!({"id": "r", "title": "hidden", "owner": "user5"});
        let out = fan_out(
            &conn,
            &schema,
            &broker,
            &mine,
            Action::Create,
            rec.as_object().expect("object"),
            plain,
            3500,
        );
        assert!(out.is_empty());
    }

    #[test]
    fn message_shape() {
        let d = message_data(Action::Update, &json!({"id": "a", "n": 1}));
        assert_eq!(&d[..], br#"{"record":{"id":"a","n":1},"action":"update"}"#);
    }

    #[test]
    fn grouping_keys() {
        let t = Topic::parse("posts/*");
        let g = Identity::Guest;
        assert_eq!(
            depends("public = true", &g, &t),
            (Who::Anyone, String::new())
        );
        assert_eq!(
            depends("owner = @request.auth.id", &g, &t),
            (Who::Guest, String::new())
        );
        let (_, o) = depends("@request.query.x = 1", &g, &t);
        assert!(!o.is_empty());
    }

    fn join_schema() -> Schema {
        let id = json!({"name": "id", "type": "text", "primaryKey": true, "system": true});
        let defs = vec![
            json!({"id": "_pb_users_auth_", "name": "users", "type": "auth",
                "listRule": "id = @request.auth.id",
                "fields": [id.clone(), {"name": "tokenKey", "type": "text", "hidden": true},
                           {"name": "email", "type": "email"}]}),
            json!({"id": "pbc_authors", "name": "authors", "type": "base",
                "listRule": "owner = @request.auth.id",
                "fields": [id.clone(), {"name": "name", "type": "text"},
                           {"name": "owner", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1}]}),
            json!({"id": "pbc_teams", "name": "teams", "type": "base",
                "listRule": "@request.headers.x_team = name",
                "fields": [id.clone(), {"name": "name", "type": "text"}]}),
            json!({"id": "pbc_tags", "name": "tags", "type": "base", "listRule": "",
                "fields": [id.clone(), {"name": "name", "type": "text"}]}),
            json!({"id": "pbc_locked", "name": "locked", "type": "base", "listRule": null,
                "fields": [id.clone(), {"name": "name", "type": "text"}]}),
            json!({"id": "pbc_posts", "name": "posts", "type": "base", "listRule": "",
                "fields": [id.clone(), {"name": "title", "type": "text"},
                           {"name": "author", "type": "relation", "collectionId": "pbc_authors", "maxSelect": 1},
                           {"name": "team", "type": "relation", "collectionId": "pbc_teams", "maxSelect": 1},
                           {"name": "tags", "type": "relation", "collectionId": "pbc_tags", "maxSelect": 5},
                           {"name": "locked", "type": "relation", "collectionId": "pbc_locked", "maxSelect": 1},
                           {"name": "meta", "type": "json"}]}),
            json!({"id": "pbc_comments", "name": "comments", "type": "base",
                "listRule": "@request.auth.id != ''",
                "fields": [id, {"name": "body", "type": "text"},
                           {"name": "post", "type": "relation", "collectionId": "pbc_posts", "maxSelect": 1}]}),
        ];
        Schema::new(
            defs.into_iter()
                .map(|d| collection_from_json(&d).expect("collection"))
                .collect(),
        )
    }

    /// A client filter depends on the subscriber exactly where a collection
    /// it joins has a list rule that reads the request.
    #[test]
    fn client_filter_reads_through_joins() {
        let schema = join_schema();
        let posts = schema.get("posts").expect("posts").clone();
        let none = Reads::default();
        let auth = Reads {
            auth: true,
            options: false,
        };
        let options = Reads {
            auth: false,
            options: true,
        };
        for (filter, want) in [
            ("title = 'x'", none),
            ("author = 'abc'", none),
            // A single relation's own id is its column: no join.
            ("author.id = 'abc'", none),
            ("author.name = 'n'", auth),
            ("title = 'x' || author.name:lower = 'n'", auth),
            ("author.owner.email = ''", auth),
            ("team.name = 'x'", options),
            ("tags.name ?= 'x'", none),
            ("tags.id ?= 'x'", none),
            // Superusers only: refused for every client alike.
            ("locked.name = 'x'", none),
            ("meta.author.name = 1", none),
            ("comments_via_post.body ?~ 'x'", auth),
            ("comments_via_post.post.author.name ?= 'n'", auth),
            ("author.name = 'n' && team.name = 'x'", auth.or(options)),
            ("nope.name = 'x'", none),
            ("((", none),
        ] {
            assert_eq!(
                client_filter_reads(&schema, &posts, filter),
                want,
                "{filter}"
            );
        }
    }

    /// The same filter, 20 guests and 10 users: one evaluation when its
    /// joins read nothing of the request, one per user (guests sharing
    /// one) when a joined list rule reads `@request.auth`.
    #[test]
    fn filter_groups_follow_joined_rules() {
        let schema = join_schema();
        let posts = schema.get("posts").expect("posts").clone();
        let users = schema.get("users").expect("users").clone();
        let broker = test_broker();
        let ip: IpAddr = [127, 0, 0, 1].into();
        let topic = |f: &str| {
            let o = json!({"query": {"filter": f}}).to_string();
            let enc: String = form_urlencoded::byte_serialize(o.as_bytes()).collect();
            format!("posts/*?options={enc}")
        };
        let topics = vec![
            topic("title != ''"),
            topic("author.name = 'n'"),
            topic("tags.name ?= 'x'"),
        ];
        let mut regs = Vec::new();
        for i in 0..30 {
            let reg = broker
                .register(ip, Arc::new(tokio::sync::watch::channel(false).0))
                .expect("register");
            let identity = if i < 20 {
                Identity::Guest
            } else {
                let mut rec = Map::new();
                rec.insert("id".into(), json!(format!("user{i}")));
                Identity::User(AuthRecord {
                    collection: users.clone(),
                    record: rec.into(),
                })
            };
            broker
                .set_subscriptions(&reg.id, ip, identity, &topics)
                .expect("subscribe");
            regs.push(reg);
        }
        let conn = Connection::open_in_memory().expect("sqlite");
        let mut work = Work::default();
        let rec = json!({"id": "p1", "title": "t"});
        fan_out_counted(
            &conn,
            &schema,
            &broker,
            &posts,
            Action::Create,
            rec.as_object().expect("object"),
            plain,
            3500,
            &mut work,
        );
        // `title`: 1; `tags.name` (public tags): 1; `author.name`: 1 for
        // the guests + 1 per user.
        assert_eq!(work.filters, 1 + 1 + (1 + 10));
    }
}
