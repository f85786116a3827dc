//! The record domain: one home for what a record write and read mean,
//! whoever asks — the records API, batch, the e-mail/OTP/OAuth2 flows, the
//! superuser CLI and the realtime renderer all come through here.
//!
//! A write goes through the same steps wherever it comes from:
//! 1. the body is resolved ([`body`]): modifier keys (`f+`, `+f`, `f-`,
//!    `f:autogenerate`) become plain keys holding the resulting values and
//!    hidden fields are dropped unless the principal may write them, so
//!    `@request.body` is what will really be written;
//! 2. the collection's rule is checked on the unsaved values (a create is
//!    checked as if the row were already in its table) before anything
//!    is validated, hashed or stored: a caller the rule refuses learns
//!    nothing about the data (no unique-value or id probing);
//! 3. the password policy and `oldPassword` are checked ([`password`]), then
//!    the password is hashed — only after authorization;
//! 4. new files are stored ([`files`]); a write that fails afterwards removes
//!    only the files it stored itself;
//! 5. the writer runs steps 1–2 again on the current rows (another write
//!    may have come between), validates, writes, cascades and collects the
//!    change events in the same transaction.
//!
//! Reads ([`read`]) and every rendering of a record ([`render`]: visibility,
//! `expand` with its caps, `fields`) are here too.
//!
//! The domain never sees HTTP: it takes a [`Principal`] and a typed
//! [`Request`] (what rules may read about the request).

pub mod body;
pub mod cache;
pub mod files;
pub mod password;
pub mod read;
pub mod render;
pub mod sync;
mod write;

pub use read::{check_rule, list, list_json, view, view_json, ListParams};
pub use write::{
    apply_synced, batch, create, delete, delete_cascade, refuse_view, update, BatchError, Op, Step,
    Synced,
};

use crate::auth::{AuthRecord, Identity};
use crate::files::Upload;
use crate::rules::RequestCtx;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Who a record operation is done for.
#[derive(Debug, Clone, Default)]
pub enum Principal {
    #[default]
    Guest,
    /// An auth record of a regular auth collection.
    User(AuthRecord),
    Superuser(AuthRecord),
    /// keepd itself, on behalf of a flow that carries its own proof (a
    /// verified e-mail token, an OTP, an OAuth2 login, the operator's
    /// shell): no rule applies and hidden fields may be written, but it is
    /// nobody's identity — `@request.auth` is empty for it.
    System,
}

impl Principal {
    /// Rules don't apply (superusers and the system).
    pub fn is_privileged(&self) -> bool {
        matches!(self, Principal::Superuser(_) | Principal::System)
    }

    pub fn is_superuser(&self) -> bool {
        matches!(self, Principal::Superuser(_))
    }

    /// The identity rules see as `@request.auth`.
    pub fn identity(&self) -> Identity {
        match self {
            Principal::Guest | Principal::System => Identity::Guest,
            Principal::User(a) => Identity::User(a.clone()),
            Principal::Superuser(a) => Identity::Superuser(a.clone()),
        }
    }
}

impl From<Identity> for Principal {
    fn from(i: Identity) -> Self {
        match i {
            Identity::Guest => Principal::Guest,
            Identity::User(a) => Principal::User(a),
            Identity::Superuser(a) => Principal::Superuser(a),
        }
    }
}

/// How records are shown in an answer: PocketBase's `expand` and `fields`.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub expand: String,
    pub fields: String,
}

/// What a rule may read about the request besides its body: who asks,
/// the method, the query and the headers (PocketBase's `@request.*`).
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub principal: Principal,
    /// `@request.method` (upper case).
    pub method: String,
    /// `@request.context`: "default", "oauth2", "otp", "password", ...
    pub context: &'static str,
    /// `@request.query.*`: the first value of each parameter (shared with
    /// the rule context, not copied per check).
    pub query: Arc<Map<String, Value>>,
    /// `@request.headers.*`, keyed as PocketBase keys them.
    pub headers: Arc<Map<String, Value>>,
}

impl Request {
    /// A request made by keepd itself (CLI, flows with their own proof).
    pub fn system() -> Request {
        Request {
            principal: Principal::System,
            method: "POST".into(),
            context: "default",
            ..Default::default()
        }
    }

    /// The same request made by someone else.
    pub fn with_principal(mut self, p: Principal) -> Request {
        self.principal = p;
        self
    }

    /// `expand` and `fields` from the query.
    pub fn view(&self) -> View {
        let q = |k: &str| {
            self.query
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        View {
            expand: q("expand"),
            fields: q("fields"),
        }
    }

    /// What the rules read, with the body as resolved for the write.
    pub(crate) fn rule_ctx(
        &self,
        mut body: Map<String, Value>,
        files: Map<String, Value>,
    ) -> RequestCtx {
        // A file field the write touches (an upload, kept names, a
        // removal, `[]`) is in `@request.body` with its final value, as
        // PocketBase's rules see it: `@request.body.avatar:isset = false`
        // guards uploads too. (Record values are built from `files`, never
        // from these keys.)
        for (k, v) in &files {
            body.insert(k.clone(), v.clone());
        }
        RequestCtx {
            identity: self.principal.identity(),
            method: self.method.clone(),
            context: self.context.into(),
            query: self.query.clone(),
            headers: self.headers.clone(),
            body,
            files,
        }
    }
}

/// The data of a write: the body as sent (modifier keys included) and the
/// uploaded files.
#[derive(Debug, Default)]
pub struct Input {
    pub body: Map<String, Value>,
    pub uploads: Vec<Upload>,
}

impl Input {
    pub fn json(body: Map<String, Value>) -> Input {
        Input {
            body,
            uploads: Vec::new(),
        }
    }
}
