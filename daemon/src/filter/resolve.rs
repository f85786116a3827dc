//! Identifier resolution: a field path, `@request.*` or `@collection.*`
//! name → an [`Operand`], registering the joins it needs. This is
//! PocketBase's record field resolver ("runner"), step for step:
//!
//! - `a.b.c` follows relations with LEFT JOINs (multi relations through
//!   `json_each`), `x_via_rel` follows back-relations, JSON and geoPoint
//!   fields take the rest of the path as a JSON path;
//! - alongside, a "multi-match" subquery walks the same path for the current
//!   row; it is attached when the path can yield several values (multi
//!   relation, `:each` on a multi field, back-relation without a unique
//!   index, `@collection`), so that plain operators require all values to match;
//! - `@request.*` values are bound parameters, read only through the
//!   query's probes and slots (`template`): what shapes the SQL is asked,
//!   values are bound later; `@request.auth.<field>` other than
//!   id/email/... joins the auth collection on the auth record's id.
//!
//! Every SQL identifier comes from the schema ([`Ident::new`] on a field or
//! collection name) or is a generated alias; names typed by the user are
//! only used to look those up.

use super::compile::{id_ident, only_if, Kind, MultiMatch, NullFallback, Operand, Query, Scope};
use super::error::FilterError;
use super::template::{Probe, Source, StaticClass};
use crate::schema::{Collection, Field, FieldKind};
use crate::store::dialect::{Bind, Frag, Ident};
use crate::store::engine::Ty;

/// PocketBase's `maxNestedRels`.
pub const MAX_NESTED_RELATIONS: usize = 6;

/// `@request.auth.*` fields read from the auth record without a join.
const PLAIN_AUTH_FIELDS: &[&str] = &[
    "@request.auth.id",
    "@request.auth.collectionId",
    "@request.auth.collectionName",
    "@request.auth.email",
    "@request.auth.emailVisibility",
    "@request.auth.verified",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Modifier {
    Each,
    Isset,
    Length,
    Lower,
    Changed,
}

/// Splits `name:modifier`; a name with zero or several colons has no
/// modifier (PocketBase's `splitModifier`).
fn split_modifier(s: &str) -> Result<(&str, Option<Modifier>), FilterError> {
    let mut it = s.split(':');
    let (Some(name), Some(m), None) = (it.next(), it.next(), it.next()) else {
        return Ok((s, None));
    };
    let m = match m {
        "each" => Modifier::Each,
        "isset" => Modifier::Isset,
        "length" => Modifier::Length,
        "lower" => Modifier::Lower,
        "changed" => Modifier::Changed,
        _ => return Err(FilterError::invalid(format!("unknown modifier in {s:?}"))),
    };
    Ok((name, Some(m)))
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `[\w.:]*\w` (non-empty, ends with a word character).
fn is_path_tail(s: &str) -> bool {
    s.chars().all(|c| is_word(c) || c == '.' || c == ':') && s.chars().last().is_some_and(is_word)
}

/// PocketBase's allowed field patterns.
fn allowed_name(name: &str) -> bool {
    if let Some(rest) = name.strip_prefix("@request.") {
        if rest == "context" || rest == "method" {
            return true;
        }
        return ["auth.", "body.", "query.", "headers."]
            .iter()
            .any(|p| rest.strip_prefix(p).is_some_and(is_path_tail));
    }
    if let Some(rest) = name.strip_prefix("@collection.") {
        let Some((coll, tail)) = rest.split_once('.') else {
            return false;
        };
        let (cname, calias) = match coll.split_once(':') {
            Some((c, a)) => (c, Some(a)),
            None => (coll, None),
        };
        let word = |s: &str| !s.is_empty() && s.chars().all(is_word);
        return word(cname) && calias.is_none_or(word) && is_path_tail(tail);
    }
    let mut chars = name.chars();
    chars.next().is_some_and(is_word) && chars.all(|c| is_word(c) || c == '.' || c == ':')
}

/// `coll_via_field` → (coll, field): the last `_via_` with words on both sides.
fn split_via(prop: &str) -> Option<(&str, &str)> {
    if !prop.chars().all(is_word) {
        return None;
    }
    prop.rmatch_indices("_via_")
        .map(|(i, _)| (&prop[..i], &prop[i + 5..]))
        .find(|(a, b)| !a.is_empty() && !b.is_empty())
}

fn is_multi_valuer(f: &Field) -> bool {
    matches!(
        f.kind,
        FieldKind::Select(_) | FieldKind::Relation(_) | FieldKind::File(_)
    )
}

/// Whether `column` has a single-column unique index in `c`.
pub(crate) fn has_unique_index(c: &Collection, column: &str) -> bool {
    c.indexes.iter().any(|idx| {
        crate::schema::index::parse_index(idx).is_ok_and(|d| {
            d.unique && d.columns.len() == 1 && d.columns[0].name.eq_ignore_ascii_case(column)
        })
    })
}

fn table_ident(c: &Collection) -> Result<Ident, FilterError> {
    Ident::new(&c.name).ok_or_else(|| {
        FilterError::invalid(format!("collection name {:?} is not an identifier", c.name))
    })
}

fn col_ident(f: &Field) -> Result<Ident, FilterError> {
    Ident::new(&f.name).ok_or_else(|| {
        FilterError::invalid(format!("field name {:?} is not an identifier", f.name))
    })
}

pub(crate) struct Runner<'q, 'a> {
    q: &'q mut Query<'a>,
    scope: &'q Scope<'a>,
    name: &'q str,
    active: &'a Collection,
    alias: Ident,
    nullify_missing: bool,
    with_mm: bool,
    mm: MultiMatch,
    mm_alias: Ident,
}

impl<'q, 'a> Runner<'q, 'a> {
    pub fn new(q: &'q mut Query<'a>, scope: &'q Scope<'a>, name: &'q str) -> Self {
        let from_alias = q.sub_alias("_m");
        // An invalid base name surfaces when a column of it is used.
        let from_table = Ident::new(&scope.base.name).unwrap_or_else(|| Ident::constant("invalid"));
        Runner {
            q,
            scope,
            name,
            active: scope.base,
            alias: scope.alias.clone(),
            nullify_missing: name.starts_with("@request."),
            with_mm: false,
            mm: MultiMatch {
                target: scope.alias.clone(),
                from_table,
                from_alias: from_alias.clone(),
                joins: Vec::new(),
                value: Frag::new(),
                ty: Ty::Unknown,
            },
            mm_alias: from_alias,
        }
    }

    fn fail(&self, message: impl Into<String>) -> FilterError {
        FilterError::unknown(self.name, message)
    }

    pub fn run(self) -> Result<Operand, FilterError> {
        if !allowed_name(self.name) {
            return Err(self.fail("failed to resolve field"));
        }
        table_ident(self.scope.base)?;
        let name = self.name;
        let props: Vec<&'q str> = name.split('.').collect();
        match props[0] {
            "@collection" => self.collection_field(&props),
            "@request" => self.request_field(&props),
            _ => self.active_props(&props),
        }
    }

    fn load(&self, name_or_id: &str) -> Option<&'a Collection> {
        let base = self.scope.base;
        if name_or_id == base.name || name_or_id == base.id {
            return Some(base);
        }
        self.q.ctx.schema.get(name_or_id).map(|c| &**c)
    }

    fn request_field(mut self, props: &[&'q str]) -> Result<Operand, FilterError> {
        if !self.q.probe_request() {
            return Ok(Operand::null());
        }
        if self.name.starts_with("@request.auth.") {
            return self.auth_field(props);
        }
        if self.name.starts_with("@request.body.") && props.len() > 2 {
            let (fname, modifier) = split_modifier(props[2])?;
            if let Some(field) = self.scope.base.field(fname) {
                if matches!(field.kind, FieldKind::Relation(_)) && props.len() > 3 {
                    return self.body_relation(field, props);
                }
                if props.len() == 3 {
                    match modifier {
                        Some(Modifier::Each) => return self.body_each(field),
                        Some(Modifier::Length) => {
                            if !is_multi_valuer(field) {
                                return Err(self.fail(format!(
                                    "field {:?} doesn't support multivalue operations",
                                    field.name
                                )));
                            }
                            let n = self.q.probe_count(Probe::BodyLen(field.name.clone()));
                            let kind = if n <= 1 { Kind::Const } else { Kind::Expr };
                            return Ok(Operand {
                                kind,
                                ty: Ty::Num,
                                ..Operand::expr(
                                    Frag::new().int(i64::try_from(n).unwrap_or(i64::MAX)),
                                )
                            });
                        }
                        Some(Modifier::Lower) => {
                            let empty = self.q.probe_bool(Probe::BodyTextEmpty(field.name.clone()));
                            let v = if empty {
                                Bind::Text(String::new())
                            } else {
                                self.q.slot(Source::BodyText(field.name.clone()))
                            };
                            let lower = self.q.engine().lower(&Frag::new().value(v), Ty::Text);
                            return Ok(Operand::expr(lower).with_ty(Ty::Text));
                        }
                        Some(Modifier::Changed) => return self.body_changed(field),
                        _ => {}
                    }
                }
            }
        }
        self.static_field(&props[1..])
    }

    /// A value of the request (context, method, query, headers, body, auth)
    /// as a bound parameter (PocketBase's `resolveStaticRequestField`).
    fn static_field(&mut self, path: &[&str]) -> Result<Operand, FilterError> {
        if !self.q.probe_request() {
            return Ok(Operand::null());
        }
        let Some((last, head)) = path.split_last() else {
            return Err(self.fail("empty request path"));
        };
        let (last, modifier) = split_modifier(last)?;
        let keys: Vec<String> = head
            .iter()
            .chain(std::iter::once(&last))
            .map(|k| k.to_string())
            .collect();
        let numeric = self
            .scope
            .base
            .field(last)
            .is_some_and(|f| matches!(f.kind, FieldKind::Number(_)));
        let class = self.q.probe_static(keys.clone(), numeric);
        if modifier == Some(Modifier::Isset) {
            return Ok(Operand::constant(if class == StaticClass::Missing {
                "FALSE"
            } else {
                "TRUE"
            }));
        }
        if modifier.is_some() && modifier != Some(Modifier::Lower) {
            return Err(self.fail(format!("invalid modifier sequence in {:?}", self.name)));
        }
        let bind = match class {
            StaticClass::Missing | StaticClass::Null => return Ok(Operand::null()),
            StaticClass::Empty => Bind::Text(String::new()),
            StaticClass::Value => self.q.slot(Source::Static { keys, numeric }),
        };
        let v = Frag::new().value(bind);
        if modifier == Some(Modifier::Lower) {
            let lower = self.q.engine().lower(&v, Ty::Text);
            return Ok(Operand::expr(lower).with_ty(Ty::Text));
        }
        Ok(Operand::expr(v).with_ty(if numeric { Ty::Num } else { Ty::Text }))
    }

    fn auth_field(mut self, props: &[&'q str]) -> Result<Operand, FilterError> {
        let Some(coll) = self.q.probe_auth() else {
            return Ok(Operand::null());
        };
        if PLAIN_AUTH_FIELDS.contains(&self.name) {
            return self.static_field(&props[1..]);
        }
        let coll: &'a Collection = coll;
        let table = table_ident(coll)?;
        let auth_id = self.q.slot(Source::AuthId);
        let id = id_ident();
        let on_id = auth_id.clone();
        let alias = self.q.join(
            self.scope,
            "auth".into(),
            Frag::new().ident(&table),
            Some(coll),
            |a| Some(Frag::new().col(a, &id).s(" = ").aux(on_id)),
        )?;
        let mm_alias = self.q.sub_alias("_m");
        self.mm.joins.push(
            Frag::sql(" LEFT JOIN ")
                .ident(&table)
                .s(" ")
                .ident(&mm_alias)
                .s(" ON ")
                .col(&mm_alias, &id)
                .s(" = ")
                .aux(auth_id),
        );
        self.mm_alias = mm_alias;
        self.active = coll;
        self.alias = alias;
        self.active_props(&props[2..])
    }

    fn body_each(mut self, field: &Field) -> Result<Operand, FilterError> {
        if !is_multi_valuer(field) {
            return Err(self.fail(format!(
                "field {:?} doesn't support multivalue operations",
                field.name
            )));
        }
        let json = self.q.slot(Source::BodyArray(field.name.clone()));
        let engine = self.q.engine();
        let je = self.q.join(
            self.scope,
            format!("body_each|{}", field.name),
            engine.json_each_bound(json.clone()),
            None,
            |_| None,
        )?;
        let mut op = Operand::expr(Frag::new().ident(&je).s(".value")).with_ty(Ty::Text);
        if field.is_multiple() {
            self.with_mm = true;
        }
        if self.with_mm {
            let mje = self.q.sub_alias("_m");
            self.mm.joins.push(
                engine.no_on(
                    Frag::sql(" LEFT JOIN ")
                        .f(&engine.json_each_bound(json))
                        .s(" ")
                        .ident(&mje),
                ),
            );
            self.mm.value = Frag::new().ident(&mje).s(".value");
            self.mm.ty = Ty::Text;
            op.multi = Some(Box::new(self.mm));
        }
        Ok(op)
    }

    /// `@request.body.f:changed` = `@request.body.f:isset = true && @request.body.f != f`.
    fn body_changed(self, field: &Field) -> Result<Operand, FilterError> {
        use super::ast::{Cmp, Expr, Op, Term};
        let ident = |name: String| Term::Ident { name, pos: 0 };
        let e = Expr::And(vec![
            Expr::Cmp(Cmp {
                left: ident(format!("@request.body.{}:isset", field.name)),
                op: Op::Eq,
                right: ident("true".into()),
            }),
            Expr::Cmp(Cmp {
                left: ident(format!("@request.body.{}", field.name)),
                op: Op::Neq,
                right: ident(field.name.clone()),
            }),
        ]);
        let f = self.q.expr(&e, self.scope)?;
        Ok(Operand::expr(Frag::sql("(").f(&f.to_aux()).s(")"))
            .with_nf(NullFallback::Disabled)
            .with_ty(Ty::Bool))
    }

    fn body_relation(mut self, field: &Field, props: &[&'q str]) -> Result<Operand, FilterError> {
        let Some(rel) = field.relation_collection().and_then(|id| self.load(id)) else {
            return Err(self.fail(format!(
                "failed to load the collection of body field {:?}",
                field.name
            )));
        };
        if self.q.probe_bool(Probe::BodyIdsEmpty(field.name.clone())) {
            return Ok(Operand::null());
        }
        let json = self.q.slot(Source::BodyIds(field.name.clone()));
        let table = table_ident(rel)?;
        let id = id_ident();
        let on_json = json.clone();
        let engine = self.q.engine();
        let alias = self.q.join(
            self.scope,
            format!("body_rel|{}", field.name),
            Frag::new().ident(&table),
            Some(rel),
            |a| Some(engine.in_json_array(&Frag::new().col(a, &id), on_json)),
        )?;
        if field.is_multiple() {
            self.with_mm = true;
        }
        let mm_alias = self.q.sub_alias("_m");
        self.mm.joins.push(
            Frag::sql(" LEFT JOIN ")
                .ident(&table)
                .s(" ")
                .ident(&mm_alias)
                .s(" ON ")
                .f(&engine.in_json_array(&Frag::new().col(&mm_alias, &id), json)),
        );
        self.mm_alias = mm_alias;
        self.active = rel;
        self.alias = alias;
        self.active_props(&props[3..])
    }

    fn collection_field(mut self, props: &[&'q str]) -> Result<Operand, FilterError> {
        if props.len() < 3 {
            return Err(self.fail("invalid @collection field path"));
        }
        let (cname, calias) = match props[1].split_once(':') {
            Some((c, a)) => (c, Some(a)),
            None => (props[1], None),
        };
        let Some(coll) = self.load(cname) else {
            return Err(self.fail(format!("failed to load collection {cname:?}")));
        };
        let table = table_ident(coll)?;
        let key = match calias {
            Some(a) if !a.is_empty() => format!("coll_alias|{a}|{}", coll.name),
            _ => format!("coll|{}", coll.name),
        };
        self.with_mm = true;
        let alias = self.q.join(
            self.scope,
            key,
            Frag::new().ident(&table),
            Some(coll),
            |_| None,
        )?;
        let mm_alias = self.q.sub_alias("_m");
        let joined = Frag::sql(" LEFT JOIN ")
            .ident(&table)
            .s(" ")
            .ident(&mm_alias);
        self.mm.joins.push(self.q.engine().no_on(joined));
        self.mm_alias = mm_alias;
        self.active = coll;
        self.alias = alias;
        self.active_props(&props[2..])
    }

    fn null_or(&self, err: FilterError) -> Result<Operand, FilterError> {
        if self.nullify_missing {
            Ok(Operand::null())
        } else {
            Err(err)
        }
    }

    fn active_props(mut self, props: &[&'q str]) -> Result<Operand, FilterError> {
        let n = props.len();
        for (i, &prop) in props.iter().enumerate() {
            let coll = self.active;
            if i + 1 == n {
                return self.finalize(coll, prop);
            }
            let field = coll.field(prop);
            if let Some(f) = field {
                if f.hidden && !self.scope.allow_hidden {
                    return Err(FilterError::hidden(prop, "non-filterable field"));
                }
                if matches!(f.kind, FieldKind::Json(_) | FieldKind::GeoPoint(_)) {
                    return self.json_path(f, &props[i + 1..]);
                }
            }
            if i >= MAX_NESTED_RELATIONS {
                return Err(FilterError::TooComplex(format!(
                    "max nested relations reached for field {prop:?}"
                )));
            }
            let Some(f) = field else {
                if let Some(op) = self.back_relation(coll, prop)? {
                    return Ok(op);
                }
                continue;
            };
            let FieldKind::Relation(_) = f.kind else {
                return Err(self.fail(format!("field {prop:?} is not a valid relation")));
            };
            let Some(rel) = f.relation_collection().and_then(|id| self.load(id)) else {
                return Err(self.fail(format!("failed to load field {prop:?} collection")));
            };
            let multiple = f.is_multiple();
            if !multiple && i + 2 == n && props[i + 1] == "id" {
                return self.finalize(coll, &f.name);
            }
            let col = col_ident(f)?;
            let table = table_ident(rel)?;
            let id = id_ident();
            let parent = self.alias.clone();
            let engine = self.q.engine();
            let alias = if !multiple {
                self.q.join(
                    self.scope,
                    format!("{}|rel|{}", parent.as_str(), f.name),
                    Frag::new().ident(&table),
                    Some(rel),
                    |a| Some(Frag::new().col(a, &id).s(" = ").col(&parent, &col)),
                )?
            } else {
                let je = self.q.join(
                    self.scope,
                    format!("{}|je|{}", parent.as_str(), f.name),
                    engine.json_each(&Frag::new().col(&parent, &col)),
                    None,
                    |_| None,
                )?;
                self.q.join(
                    self.scope,
                    format!("{}|rel|{}", parent.as_str(), f.name),
                    Frag::new().ident(&table),
                    Some(rel),
                    |a| Some(Frag::new().col(a, &id).s(" = ").ident(&je).s(".value")),
                )?
            };
            self.active = rel;
            self.alias = alias;

            if multiple {
                self.with_mm = true;
            }
            let mm_parent = self.mm_alias.clone();
            let mm_alias = self.q.sub_alias("_m");
            if !multiple {
                self.mm.joins.push(
                    Frag::sql(" LEFT JOIN ")
                        .ident(&table)
                        .s(" ")
                        .ident(&mm_alias)
                        .s(" ON ")
                        .col(&mm_alias, &id)
                        .s(" = ")
                        .col(&mm_parent, &col),
                );
            } else {
                let mm_je = self.q.sub_alias("_m");
                let each = Frag::sql(" LEFT JOIN ")
                    .f(&engine.json_each(&Frag::new().col(&mm_parent, &col)))
                    .s(" ")
                    .ident(&mm_je);
                self.mm.joins.push(
                    engine
                        .no_on(each)
                        .s(" LEFT JOIN ")
                        .ident(&table)
                        .s(" ")
                        .ident(&mm_alias)
                        .s(" ON ")
                        .col(&mm_alias, &id)
                        .s(" = ")
                        .ident(&mm_je)
                        .s(".value"),
                );
            }
            self.mm_alias = mm_alias;
        }
        Err(self.fail("failed to resolve field"))
    }

    /// Follows `coll_via_field`; `Ok(Some(NULL))` when a `@request.*` path
    /// names no such back-relation.
    fn back_relation(
        &mut self,
        coll: &'a Collection,
        prop: &str,
    ) -> Result<Option<Operand>, FilterError> {
        let Some((cname, fname)) = split_via(prop) else {
            return self
                .null_or(self.fail(format!("failed to resolve field {prop:?}")))
                .map(Some);
        };
        let Some(back) = self.load(cname) else {
            return self
                .null_or(self.fail(format!(
                    "failed to load back relation field {prop:?} collection"
                )))
                .map(Some);
        };
        let Some(bf) = back.field(fname) else {
            return self
                .null_or(self.fail(format!("missing back relation field {fname:?}")))
                .map(Some);
        };
        if !matches!(bf.kind, FieldKind::Relation(_)) {
            return self
                .null_or(self.fail(format!("invalid back relation field {fname:?}")))
                .map(Some);
        }
        if bf.hidden && !self.scope.allow_hidden {
            return Err(FilterError::hidden(
                fname,
                "non-filterable back relation field",
            ));
        }
        if bf.relation_collection() != Some(coll.id.as_str()) {
            return self
                .null_or(self.fail(format!(
                    "invalid collection reference of a back relation field {fname:?}"
                )))
                .map(Some);
        }
        let multiple = bf.is_multiple();
        let table = table_ident(back)?;
        let bcol = col_ident(bf)?;
        let id = id_ident();
        let parent = self.alias.clone();
        let inner_je = self.q.sub_alias("_e");
        let engine = self.q.engine();
        let alias = self.q.join(
            self.scope,
            format!("{}|back|{prop}", parent.as_str()),
            Frag::new().ident(&table),
            Some(back),
            |a| {
                Some(if !multiple {
                    Frag::new().col(a, &bcol).s(" = ").col(&parent, &id)
                } else {
                    Frag::new()
                        .col(&parent, &id)
                        .s(" IN (SELECT ")
                        .ident(&inner_je)
                        .s(".value FROM ")
                        .f(&engine.json_each(&Frag::new().col(a, &bcol)))
                        .s(" ")
                        .ident(&inner_je)
                        .s(")")
                })
            },
        )?;
        self.active = back;
        self.alias = alias;

        if multiple {
            self.with_mm = true;
        } else if !self.with_mm {
            self.with_mm = !has_unique_index(back, &bf.name);
        }
        let mm_parent = self.mm_alias.clone();
        let mm_alias = self.q.sub_alias("_m");
        let on = if !multiple {
            Frag::new()
                .col(&mm_alias, &bcol)
                .s(" = ")
                .col(&mm_parent, &id)
        } else {
            let je2 = self.q.sub_alias("_e");
            Frag::new()
                .col(&mm_parent, &id)
                .s(" IN (SELECT ")
                .ident(&je2)
                .s(".value FROM ")
                .f(&engine.json_each(&Frag::new().col(&mm_alias, &bcol)))
                .s(" ")
                .ident(&je2)
                .s(")")
        };
        self.mm.joins.push(
            Frag::sql(" LEFT JOIN ")
                .ident(&table)
                .s(" ")
                .ident(&mm_alias)
                .s(" ON ")
                .f(&on),
        );
        self.mm_alias = mm_alias;
        Ok(None)
    }

    /// The rest of the path inside a JSON/geoPoint field.
    fn json_path(mut self, field: &Field, rest: &[&str]) -> Result<Operand, FilterError> {
        let mut path = String::new();
        for (j, p) in rest.iter().enumerate() {
            // PocketBase drops characters that are not identifier characters (':').
            let key: String = p.chars().filter(|&c| c != ':').collect();
            if p.parse::<i64>().is_ok() {
                path.push('[');
                path.push_str(&key);
                path.push(']');
            } else {
                if j > 0 {
                    path.push('.');
                }
                if key.is_empty() {
                    path.push_str("\"\"");
                } else {
                    path.push_str(&key);
                }
            }
        }
        let col = col_ident(field)?;
        let engine = self.q.engine();
        let mut op = Operand::expr(engine.json_extract(&Frag::new().col(&self.alias, &col), &path))
            .with_nf(NullFallback::Disabled)
            .with_ty(Ty::Json);
        if self.with_mm {
            self.mm.value = engine.json_extract(&Frag::new().col(&self.mm_alias, &col), &path);
            self.mm.ty = Ty::Json;
            op.multi = Some(Box::new(self.mm));
        }
        Ok(op)
    }

    /// The last path element: a field of `coll`, with an optional modifier.
    fn finalize(mut self, coll: &'a Collection, prop: &str) -> Result<Operand, FilterError> {
        let (name, modifier) = split_modifier(prop)?;
        let Some(field) = coll.field(name) else {
            return self.null_or(FilterError::unknown(name, "unknown field"));
        };
        if field.hidden && !self.scope.allow_hidden {
            return Err(FilterError::hidden(name, "non-filterable field"));
        }
        let multi_valuer = is_multi_valuer(field);
        let col_name = col_ident(field)?;
        let col = Frag::new().col(&self.alias, &col_name);
        let mm_col = Frag::new().col(&self.mm_alias, &col_name);
        let engine = self.q.engine();

        if modifier == Some(Modifier::Length) && multi_valuer {
            let mut op = Operand::expr(engine.json_array_length(&col)).with_ty(Ty::Num);
            if self.with_mm {
                self.mm.value = engine.json_array_length(&mm_col);
                self.mm.ty = Ty::Num;
                op.multi = Some(Box::new(self.mm));
            }
            return Ok(op);
        }

        if modifier == Some(Modifier::Each) && multi_valuer {
            let je = self.q.join(
                self.scope,
                format!("{}|each|{}", self.alias.as_str(), field.name),
                engine.json_each(&col),
                None,
                |_| None,
            )?;
            let mut op = Operand::expr(Frag::new().ident(&je).s(".value")).with_ty(Ty::Text);
            if field.is_multiple() {
                self.with_mm = true;
            }
            if self.with_mm {
                let mje = self.q.sub_alias("_m");
                self.mm.joins.push(
                    engine.no_on(
                        Frag::sql(" LEFT JOIN ")
                            .f(&engine.json_each(&mm_col))
                            .s(" ")
                            .ident(&mje),
                    ),
                );
                self.mm.value = Frag::new().ident(&mje).s(".value");
                self.mm.ty = Ty::Text;
                op.multi = Some(Box::new(self.mm));
            }
            return Ok(op);
        }

        let mut op = Operand::expr(col.clone()).with_ty(match field.kind {
            FieldKind::Number(_) => Ty::NumCol,
            FieldKind::Bool(_) => Ty::Bool,
            _ => Ty::TextCol,
        });
        let mut mm_value = mm_col.clone();
        // PocketBase's guard on auth e-mails: a client reads one only where
        // `emailVisibility` is on. The comparison is ANDed with the guard
        // (index-friendly); wherever the value is read without that
        // comparison (the "every value" subquery, a sort, a function
        // argument) it reads as NULL when hidden.
        let guarded = field.name == "email" && !self.scope.allow_hidden && coll.is_auth();
        if guarded {
            op.guard = Some(email_visible(&self.alias));
        }
        if matches!(field.kind, FieldKind::Json(_)) {
            op.nf = NullFallback::Disabled;
            op.sql = engine.json_extract(&col, "");
            mm_value = engine.json_extract(&mm_col, "");
            op.ty = Ty::Json;
        }
        if modifier == Some(Modifier::Lower) {
            op.sql = engine.lower(&op.sql, op.ty);
            mm_value = engine.lower(&mm_value, op.ty);
            op.ty = Ty::Text;
        }
        self.mm.ty = op.ty;
        if self.with_mm {
            if guarded {
                mm_value = only_if(&email_visible(&self.mm_alias), &mm_value);
            }
            self.mm.value = mm_value;
            op.multi = Some(Box::new(self.mm));
        }
        Ok(op)
    }
}

/// `alias.emailVisibility = TRUE`.
fn email_visible(alias: &Ident) -> Frag {
    Frag::new()
        .col(alias, &Ident::constant("emailVisibility"))
        .s(" = TRUE")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in [
            "title",
            "a.b.c",
            "a:each",
            "_x",
            "1a",
            "@request.context",
            "@request.method",
            "@request.auth.id",
            "@request.body.a.b:each",
            "@request.query.x",
            "@request.headers.x_token",
            "@collection.posts.title",
            "@collection.posts:p.title:lower",
        ] {
            assert!(allowed_name(ok), "{ok}");
        }
        for bad in [
            "@x",
            "#x",
            "@request",
            "@request.auth",
            "@request.auth.",
            "@request.foo.x",
            "@request.body.x:",
            "@collection.posts",
            "@collection.posts.",
            "@collection.posts:.x",
            "@collection.po-sts.x",
            "@collection.a:b:c.x",
            "",
        ] {
            assert!(!allowed_name(bad), "{bad}");
        }
    }

    #[test]
    fn via() {
        assert_eq!(split_via("comments_via_post"), Some(("comments", "post")));
        assert_eq!(split_via("a_via_b_via_c"), Some(("a_via_b", "c")));
        assert_eq!(split_via("x_via_y_via_"), Some(("x", "y_via_")));
        assert_eq!(split_via("_via_x"), None);
        assert_eq!(split_via("a_via_b:each"), None);
        assert_eq!(split_via("plain"), None);
    }

    #[test]
    fn modifiers() {
        assert!(matches!(
            split_modifier("a:each"),
            Ok(("a", Some(Modifier::Each)))
        ));
        assert!(matches!(split_modifier("a"), Ok(("a", None))));
        assert!(matches!(split_modifier("a:b:c"), Ok(("a:b:c", None))));
        assert!(split_modifier("a:nope").is_err());
    }
}
