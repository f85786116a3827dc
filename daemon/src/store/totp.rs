//! `_keepd_totp`: keepd's TOTP second factor, one row per auth record —
//! the secret, whether it is confirmed, the last time step used (a code is
//! good once) and the digests of the unused recovery codes.

use super::args;
use super::dialect;
use super::Conn as Connection;
use crate::error::ApiResult;
use crate::util::now_string;

/// A record's TOTP state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totp {
    pub secret: String,
    /// Off until the first code confirms the enrolment.
    pub confirmed: bool,
    pub last_step: u64,
    /// Digests of the recovery codes not used yet.
    pub recovery: Vec<String>,
}

fn recovery_json(digests: &[String]) -> String {
    serde_json::to_string(digests).unwrap_or_else(|_| "[]".into())
}

pub fn get(c: &Connection, collection_ref: &str, record_ref: &str) -> ApiResult<Option<Totp>> {
    c.one(
        "SELECT secret, confirmed, lastStep, recovery FROM _keepd_totp
         WHERE collectionRef = ?1 AND recordRef = ?2",
        [collection_ref, record_ref],
        |r| {
            let recovery: String = r.get(3)?;
            Ok(Totp {
                secret: r.get(0)?,
                confirmed: r.get::<i64>(1)? != 0,
                last_step: r.get::<i64>(2)?.max(0) as u64,
                recovery: serde_json::from_str(&recovery).unwrap_or_default(),
            })
        },
    )
}

/// Writes a record's whole TOTP state (a new enrolment replaces the old).
pub fn put(c: &Connection, collection_ref: &str, record_ref: &str, t: &Totp) -> ApiResult<()> {
    let sql = dialect::upsert(
        "_keepd_totp",
        &[
            "collectionRef",
            "recordRef",
            "secret",
            "confirmed",
            "lastStep",
            "recovery",
            "created",
            "updated",
        ],
        &["collectionRef", "recordRef"],
    );
    let now = now_string();
    c.exec(
        &sql,
        args![
            collection_ref,
            record_ref,
            t.secret,
            t.confirmed,
            t.last_step as i64,
            recovery_json(&t.recovery),
            now,
            now
        ],
    )?;
    Ok(())
}

/// Turns an enrolment on with the step of the code that confirmed it and
/// the recovery codes' digests.
pub fn confirm(
    c: &Connection,
    collection_ref: &str,
    record_ref: &str,
    step: u64,
    recovery: &[String],
) -> ApiResult<()> {
    c.exec(
        "UPDATE _keepd_totp SET confirmed = 1, lastStep = ?3, recovery = ?4, updated = ?5
         WHERE collectionRef = ?1 AND recordRef = ?2",
        args![
            collection_ref,
            record_ref,
            step as i64,
            recovery_json(recovery),
            now_string()
        ],
    )?;
    Ok(())
}

/// Records the use of a code of time step `step`; only forward, so of two
/// concurrent uses of one step the second finds nothing to change (false).
pub fn advance(
    c: &Connection,
    collection_ref: &str,
    record_ref: &str,
    step: u64,
) -> ApiResult<bool> {
    let n = c.exec(
        "UPDATE _keepd_totp SET lastStep = ?3, updated = ?4
         WHERE collectionRef = ?1 AND recordRef = ?2 AND lastStep < ?3",
        args![collection_ref, record_ref, step as i64, now_string()],
    )?;
    Ok(n == 1)
}

/// Replaces the recovery digests `old` (as read) with `left`; false when
/// they changed meanwhile (a concurrent use of the same code).
pub fn replace_recovery(
    c: &Connection,
    collection_ref: &str,
    record_ref: &str,
    old: &[String],
    left: &[String],
) -> ApiResult<bool> {
    let n = c.exec(
        "UPDATE _keepd_totp SET recovery = ?3, updated = ?5
         WHERE collectionRef = ?1 AND recordRef = ?2 AND recovery = ?4",
        args![
            collection_ref,
            record_ref,
            recovery_json(left),
            recovery_json(old),
            now_string()
        ],
    )?;
    Ok(n == 1)
}

pub fn delete(c: &Connection, collection_ref: &str, record_ref: &str) -> ApiResult<()> {
    c.exec(
        "DELETE FROM _keepd_totp WHERE collectionRef = ?1 AND recordRef = ?2",
        [collection_ref, record_ref],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let c = Connection::open_in_memory().expect("db");
        c.script(
            "CREATE TABLE _keepd_totp (
                collectionRef TEXT NOT NULL, recordRef TEXT NOT NULL, secret TEXT NOT NULL,
                confirmed INTEGER NOT NULL DEFAULT 0, lastStep INTEGER NOT NULL DEFAULT 0,
                recovery JSON NOT NULL DEFAULT '[]', created TEXT NOT NULL DEFAULT '',
                updated TEXT NOT NULL DEFAULT '', PRIMARY KEY (collectionRef, recordRef))",
        )
        .expect("ddl");
        c
    }

    #[test]
    fn enrol_confirm_use_and_reenrol() {
        let c = db();
        let pending = Totp {
            secret: "S1".into(),
            confirmed: false,
            last_step: 0,
            recovery: vec![],
        };
        put(&c, "col", "rec", &pending).expect("put");
        assert_eq!(get(&c, "col", "rec").expect("get"), Some(pending));
        confirm(&c, "col", "rec", 10, &["a".into(), "b".into()]).expect("confirm");
        let t = get(&c, "col", "rec").expect("get").expect("row");
        assert!(t.confirmed);
        assert_eq!((t.last_step, t.recovery.len()), (10, 2));
        // A step is good once; only forward.
        assert!(!advance(&c, "col", "rec", 10).expect("advance"));
        assert!(advance(&c, "col", "rec", 11).expect("advance"));
        // Recovery codes: compare-and-swap on what was read.
        assert!(replace_recovery(&c, "col", "rec", &t.recovery, &["b".into()]).expect("use"));
        assert!(!replace_recovery(&c, "col", "rec", &t.recovery, &[]).expect("stale"));
        // A new enrolment replaces the state.
        put(
            &c,
            "col",
            "rec",
            &Totp {
                secret: "S2".into(),
                confirmed: false,
                last_step: 0,
                recovery: vec![],
            },
        )
        .expect("put");
        let t = get(&c, "col", "rec").expect("get").expect("row");
        assert_eq!(
            (t.secret.as_str(), t.confirmed, t.last_step),
            ("S2", false, 0)
        );
        delete(&c, "col", "rec").expect("delete");
        assert_eq!(get(&c, "col", "rec").expect("get"), None);
    }
}
