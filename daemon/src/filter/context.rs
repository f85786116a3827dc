//! What a filter is compiled against: the schema, the base collection, the
//! request (`@request.*`), the clock (`@now`...) and who is asking.

use crate::schema::{Collection, Schema};
use crate::store::engine::Engine;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::sync::Arc;

/// The authenticated record of a request.
#[derive(Debug, Clone)]
pub struct AuthInfo {
    pub collection: Arc<Collection>,
    /// The record's fields as stored (hidden ones included).
    pub record: Map<String, Value>,
}

/// PocketBase's `RequestInfo`: what `@request.*` reads.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    pub auth: Option<AuthInfo>,
    /// The parsed body (JSON numbers stay numbers; multipart values are strings).
    pub body: Map<String, Value>,
    /// The first value of each query parameter.
    pub query: Map<String, Value>,
    /// The first value of each header, keyed by [`header_key`].
    pub headers: Map<String, Value>,
    pub method: String,
    /// "default", "oauth2", "otp", "password", "realtime", "protectedFile", "batch".
    pub context: String,
}

impl RequestInfo {
    /// The request as the compiler reads it.
    pub fn view(&self) -> RequestView<'_> {
        RequestView {
            auth: self.auth.as_ref().map(|a| AuthView {
                collection: &a.collection,
                record: &a.record,
            }),
            body: &self.body,
            query: &self.query,
            headers: &self.headers,
            method: &self.method,
            context: &self.context,
        }
    }
}

/// The authenticated record, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct AuthView<'a> {
    pub collection: &'a Arc<Collection>,
    /// The record's fields as stored (hidden ones included).
    pub record: &'a Map<String, Value>,
}

/// What `@request.*` reads, borrowed from wherever the request keeps it
/// (no copy per rule); see [`RequestInfo`] for the fields.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub auth: Option<AuthView<'a>>,
    pub body: &'a Map<String, Value>,
    pub query: &'a Map<String, Value>,
    pub headers: &'a Map<String, Value>,
    pub method: &'a str,
    pub context: &'a str,
}

/// PocketBase's header key normalisation (`inflector.Snakecase`):
/// `X-Token` → `x_token`, `userAgent` → `user_agent`.
pub fn header_key(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for word in name.split(|c: char| !(c.is_alphanumeric()) || c == '_') {
        if word.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('_');
        }
        let mut prev_upper = false;
        for (i, c) in word.chars().enumerate() {
            let upper = c.is_uppercase();
            if upper && i > 0 && !prev_upper {
                out.push('_');
            }
            out.push(c);
            prev_upper = upper;
        }
    }
    out.to_lowercase()
}

/// Who the expression is compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// API rules and superuser requests: hidden fields, `@request.*` and
    /// `@collection.*` allowed (PocketBase's `allowHiddenFields`).
    Privileged,
    /// A non-superuser's `filter`/`sort`: no `@request.*`/`@collection.*`
    /// (403), no hidden fields, e-mails only where `emailVisibility` is on,
    /// and each joined collection's list rule applies.
    Client,
}

/// The compile context.
#[derive(Debug, Clone)]
pub struct Ctx<'a> {
    pub schema: &'a Schema,
    pub collection: &'a Collection,
    /// SQL alias of the base table (default: the collection name).
    pub alias: &'a str,
    /// `None` when compiling outside a request: every `@request.*` is NULL.
    pub request: Option<RequestView<'a>>,
    pub now: DateTime<Utc>,
    pub access: Access,
    /// The engine the SQL is written for.
    pub engine: Engine,
}

impl<'a> Ctx<'a> {
    /// A context for a request; `privileged` is true for rules and
    /// superusers, false for a client's `filter`/`sort`.
    pub fn new(
        schema: &'a Schema,
        collection: &'a Collection,
        request: &'a RequestInfo,
        privileged: bool,
    ) -> Ctx<'a> {
        Ctx::for_request(schema, collection, request.view(), privileged)
    }

    /// [`Ctx::new`] for a borrowed view of the request.
    pub fn for_request(
        schema: &'a Schema,
        collection: &'a Collection,
        request: RequestView<'a>,
        privileged: bool,
    ) -> Ctx<'a> {
        Ctx {
            schema,
            collection,
            alias: &collection.name,
            request: Some(request),
            now: Utc::now(),
            access: if privileged {
                Access::Privileged
            } else {
                Access::Client
            },
            engine: schema.engine(),
        }
    }

    /// A privileged context with no request (system use, rule validation).
    pub fn system(schema: &'a Schema, collection: &'a Collection) -> Ctx<'a> {
        Ctx {
            schema,
            collection,
            alias: &collection.name,
            request: None,
            now: Utc::now(),
            access: Access::Privileged,
            engine: schema.engine(),
        }
    }

    pub fn with_now(mut self, now: DateTime<Utc>) -> Self {
        self.now = now;
        self
    }

    pub fn with_alias(mut self, alias: &'a str) -> Self {
        self.alias = alias;
        self
    }

    pub fn with_access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }

    /// The same context, compiling for `engine`.
    pub fn with_engine(mut self, engine: Engine) -> Self {
        self.engine = engine;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::header_key;

    #[test]
    fn header_keys() {
        for (h, want) in [
            ("X-Token", "x_token"),
            ("Content-Type", "content_type"),
            ("user-agent", "user_agent"),
            ("X-API-KEY", "x_api_key"),
            ("myTestDB", "my_test_db"),
            ("__x--y__", "x_y"),
        ] {
            assert_eq!(header_key(h), want, "{h}");
        }
    }
}
